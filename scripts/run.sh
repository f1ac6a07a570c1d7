#!/usr/bin/env bash
# Sets up the machine, builds shoal (release) and runs a single-node swarm with a sample service:
#   shoal daemon --data-dir $SHOAL_DATA --api-socket $SHOAL_SOCKET   (in the background, logging to a file)
#   docker swarm init; docker service create --name hello --replicas 2 -p $SHOAL_PORT:80 ... (an httpd)
# checks that the published port answers (curl http://localhost:$SHOAL_PORT/), then follows the
# daemon's log until Ctrl-C, which stops the daemon.
# Environment: SHOAL_DATA (default ~/.local/share/shoal), SHOAL_SOCKET (default /var/run/shoal.sock,
# the socket `shoal daemon` and the `shoal` CLI use by default),
# SHOAL_PORT (the sample service's published port, default 8080),
# SHOAL_START_TIMEOUT / SHOAL_CONVERGE_TIMEOUT in seconds (defaults 60 / 120).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

data_dir=${SHOAL_DATA:-$HOME/.local/share/shoal}
data_dir=${data_dir%/}
socket=${SHOAL_SOCKET:-/var/run/shoal.sock}
log_file=$data_dir.log
pid_file=$data_dir.pid
start_timeout=${SHOAL_START_TIMEOUT:-60}
converge_timeout=${SHOAL_CONVERGE_TIMEOUT:-120}
port=${SHOAL_PORT:-8080}
readonly service=hello image=shoal-test/busybox:1

daemon_pid=""
own_daemon=false
tail_pid=""

fail() {
    echo "run: step '$1' failed: $2" >&2
    if [[ -n "$daemon_pid" && -s "$log_file" ]]; then
        echo "run: last lines of $log_file:" >&2
        tail -n 20 "$log_file" >&2
    fi
    exit 1
}

dockerc() {
    docker -H "unix://$socket" "$@"
}

# Polls a command until it succeeds or the deadline passes; no fixed sleeps standing in for waiting.
wait_until() {
    local timeout=$1 deadline
    shift
    deadline=$((SECONDS + timeout))
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        if [[ -n "$daemon_pid" ]] && ! kill -0 "$daemon_pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.2
    done
}

api_answers() {
    dockerc version >/dev/null 2>&1
}

stop_daemon() {
    [[ -z "$tail_pid" ]] || kill "$tail_pid" 2>/dev/null || true
    [[ "$own_daemon" == true && -n "$daemon_pid" ]] || return 0
    if kill -0 "$daemon_pid" 2>/dev/null; then
        echo "run: stopping shoal (pid $daemon_pid)"
        kill -TERM "$daemon_pid" 2>/dev/null || true
        local deadline=$((SECONDS + 15))
        while kill -0 "$daemon_pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
        if kill -0 "$daemon_pid" 2>/dev/null; then
            echo "run: shoal did not stop within 15 s, killing it" >&2
            kill -KILL "$daemon_pid" 2>/dev/null || true
        fi
        wait "$daemon_pid" 2>/dev/null || true
    fi
    rm -f "$pid_file"
}
trap stop_daemon EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# 1. Packages, test image, toolchain checks.
scripts/setup.sh || fail setup "scripts/setup.sh failed (see above)"

# 2. Build.
cargo build --release --bin shoal || fail build "cargo build --release --bin shoal failed (see above)"
shoal_bin=${CARGO_TARGET_DIR:-target}/release/shoal
[[ -x "$shoal_bin" ]] || fail build "no binary at $shoal_bin"

# 3. Start the daemon, or reuse one that an earlier run.sh started with the same data dir.
mkdir -p "$data_dir" || fail start "cannot create the data dir $data_dir"
existing_pid=$(cat "$pid_file" 2>/dev/null || true)
if [[ -n "$existing_pid" ]] && kill -0 "$existing_pid" 2>/dev/null &&
    tr '\0' ' ' <"/proc/$existing_pid/cmdline" 2>/dev/null | grep -q 'shoal daemon'; then
    daemon_pid=$existing_pid
    echo "run: reusing the shoal daemon already running as pid $daemon_pid (it keeps running after Ctrl-C)"
else
    if api_answers; then
        fail start "something already answers on $socket; stop it or set SHOAL_SOCKET to another path"
    fi
    [[ ! -S "$socket" ]] || rm -f "$socket" # stale: left by a daemon that did not clean up
    echo "run: starting shoal daemon (data $data_dir, socket $socket, log $log_file)"
    echo "=== scripts/run.sh starting shoal daemon at $(date -Is) ===" >>"$log_file"
    "$shoal_bin" daemon --data-dir "$data_dir" --api-socket "$socket" >>"$log_file" 2>&1 &
    daemon_pid=$!
    own_daemon=true
    echo "$daemon_pid" >"$pid_file"
fi

# 4. Wait for the Docker-compatible API.
if ! wait_until "$start_timeout" api_answers; then
    if ! kill -0 "$daemon_pid" 2>/dev/null; then
        fail wait-for-api "shoal daemon (pid $daemon_pid) exited before its API answered"
    fi
    fail wait-for-api "'docker -H unix://$socket version' did not answer within ${start_timeout}s"
fi

# 5. Make it a single-node swarm (a manager), unless it already is one.
swarm_state=$(dockerc info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}' 2>&1) ||
    fail swarm-init "docker info failed: $swarm_state"
case "$swarm_state" in
"active true") ;;
"inactive "*)
    dockerc swarm init --advertise-addr 127.0.0.1 ||
        fail swarm-init "docker swarm init --advertise-addr 127.0.0.1 failed (see above)"
    ;;
"active false")
    fail swarm-init "this node is a worker of another swarm; use another SHOAL_DATA or 'docker swarm leave'"
    ;;
*)
    fail swarm-init "unexpected swarm state '$swarm_state' (expected inactive or active)"
    ;;
esac

# 6. The sample service, unless it exists.
if ! dockerc service inspect "$service" >/dev/null 2>&1; then
    # $(hostname) is for the container's shell, hence the single quotes.
    # shellcheck disable=SC2016
    dockerc service create --detach --name "$service" --replicas 2 --publish "$port:80" "$image" \
        sh -c 'mkdir -p /www && echo hello from $(hostname) >/www/index.html && exec httpd -f -p 80 -h /www' >/dev/null ||
        fail service-create "docker service create --name $service failed (see above)"
fi

converged() {
    dockerc service ls --format '{{.Name}} {{.Replicas}}' 2>/dev/null |
        awk -v name="$service" '$1 == name && $2 == "2/2" { found = 1 } END { exit !found }'
}
if ! wait_until "$converge_timeout" converged; then
    dockerc service ps --no-trunc "$service" >&2 || true
    fail service-converge "service $service did not reach 2/2 running replicas within ${converge_timeout}s"
fi

answers() {
    curl -sf -m 2 "http://localhost:$port/" >/dev/null
}
if ! wait_until "$converge_timeout" answers; then
    fail published-port "http://localhost:$port/ (the service's published port) did not answer within ${converge_timeout}s"
fi

echo
dockerc service ls || fail service-ls "docker service ls failed"
echo
dockerc service ps "$service" || fail service-ps "docker service ps $service failed"

cat <<EOF

shoal is running: pid $daemon_pid (also in $pid_file), data $data_dir, log $log_file.
Use it from another shell:
    export DOCKER_HOST=unix://$socket
    docker node ls; docker service ls; docker service logs $service
The sample service answers on its published port (each request reaches one of its replicas):
    curl http://localhost:$port/    ->  $(curl -s -m 2 "http://localhost:$port/")
Stop it: Ctrl-C here, or   kill $daemon_pid

Following $log_file (Ctrl-C to stop):
EOF

# 7. Follow the log until Ctrl-C or until the daemon exits.
tail -n 0 -F --pid="$daemon_pid" "$log_file" &
tail_pid=$!
wait "$tail_pid" || true
if ! kill -0 "$daemon_pid" 2>/dev/null; then
    own_daemon=false
    rm -f "$pid_file"
    echo "run: shoal (pid $daemon_pid) exited; see $log_file" >&2
    exit 1
fi
