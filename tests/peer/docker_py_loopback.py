"""pytest plugin for running docker-py's integration tests against a shoal daemon.

docker-py's `tests/helpers.py` makes every swarm listen on `0.0.0.0:<random port>`. Only loopback
may carry test traffic on the machines shoal is tested on, so swarms listen on 127.0.0.1
instead; everything else about the tests is left as docker-py wrote it.
"""

import random


def pytest_configure(config):
    from tests import helpers

    def loopback_listen_addr():
        return f"127.0.0.1:{random.randrange(10000, 25000)}"

    helpers.swarm_listen_addr = loopback_listen_addr
