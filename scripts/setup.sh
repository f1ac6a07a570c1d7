#!/usr/bin/env bash
# Installs what building and testing shoal needs, idempotently and quietly:
#   - Debian packages: git (the GitOps controller and its tests run the git program),
#     librocksdb-dev (we link Debian's RocksDB, see README "Why system RocksDB"),
#     libclang-dev (bindgen), protobuf-compiler (protoc), pkg-config, busybox-static (test image only),
#     etcd-server and etcd-client (etcd side by side in `shoal bench join`), docker-registry (the
#     registry tests/image_pull.rs starts to pull images from), iproute2, nftables, iptables and
#     curl (the data plane and its tests), containerd (each host of the multi-host harness,
#     src/bench/hosts.rs, runs its own containerd and dockerd), ethtool (GRO on the harness's
#     veths, as on real NICs), wrk (`shoal bench net`), openssl (tests/api_access.rs checks the
#     TLS versions and suites the listeners accept), openssh-server (tests/gitops_ssh.rs starts an
#     sshd of its own to serve a repository; the package's service is not used), chromium
#     (tests/dashboard.rs loads the web dashboard in headless Chromium) and prometheus (for
#     promtool: tests/metrics.rs lints every scrape with it);
#   - the test image shoal-test/busybox:1 (+ :latest), imported from a busybox rootfs, since no
#     registry is reachable to pull one, also tagged alpine:3.10 and busybox:latest, the images
#     docker-py's integration tests run;
#   - a Python venv with docker-py 7.1.0 and pytest, pinned in tests/peer/docker-py-requirements.txt,
#     for docker-py's own integration tests (tests/docker_py.rs), at $SHOAL_PY_VENV (default
#     ~/.cache/shoal/docker-py-venv).
# Prints one line on success; on failure, the output of the step that failed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly TEST_IMAGE=shoal-test/busybox:1
readonly TEST_IMAGE_LATEST=shoal-test/busybox:latest
# Images docker-py's integration tests use (tests/integration/base.py TEST_IMG; the services run
# busybox); no registry is reachable, so they are the test image under those names.
readonly PEER_TEST_IMAGES=(alpine:3.10 busybox:latest)
readonly PY_REQUIREMENTS=tests/peer/docker-py-requirements.txt
readonly PY_VENV=${SHOAL_PY_VENV:-$HOME/.cache/shoal/docker-py-venv}
readonly APT_PACKAGES=(git librocksdb-dev libclang-dev protobuf-compiler pkg-config busybox-static etcd-server etcd-client docker-registry iproute2 nftables iptables curl containerd wrk ethtool openssl prometheus openssh-server chromium)

die() {
    echo "setup: $*" >&2
    exit 1
}

# Runs a command with its output captured; shows the output only if it fails.
quiet() {
    local what=$1 log
    shift
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
        echo "setup: $what failed: $*" >&2
        cat "$log" >&2
        rm -f "$log"
        exit 1
    fi
    rm -f "$log"
}

as_root() {
    if [[ $EUID -eq 0 ]]; then
        "$@"
    elif command -v sudo >/dev/null; then
        sudo "$@"
    else
        die "need root to run '$*' and sudo is not installed"
    fi
}

install_debian_packages() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    quiet "apt-get update" as_root env DEBIAN_FRONTEND=noninteractive apt-get update
    quiet "installing ${missing[*]}" \
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

check_rust_toolchain() {
    command -v cargo >/dev/null || die "cargo not found: install Rust (rustup, stable >= 1.88) first"
    cargo fmt --version >/dev/null 2>&1 || quiet "adding rustfmt" rustup component add rustfmt
    cargo clippy --version >/dev/null 2>&1 || quiet "adding clippy" rustup component add clippy
}

# The version of the RocksDB headers the build links against (ROCKSDB_INCLUDE_DIR in .cargo/config.toml).
rocksdb_version() {
    awk '/#define ROCKSDB_(MAJOR|MINOR|PATCH) / { v = v (v == "" ? "" : ".") $3 } END { print v }' \
        /usr/include/rocksdb/version.h
}

build_test_image() {
    # dpkg -s busybox-static passed, so /bin/busybox is the static build (the image has no libc).
    local busybox=/bin/busybox rootfs applet
    image_workdir=$(mktemp -d)
    trap 'rm -rf "$image_workdir"' EXIT
    rootfs=$image_workdir/rootfs
    mkdir -p "$rootfs"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,proc,sys,dev,var}
    chmod 1777 "$rootfs/tmp"
    chmod 0700 "$rootfs/root"
    cp "$busybox" "$rootfs/bin/busybox"
    # What `busybox --install -s` does inside the rootfs, without needing a chroot.
    while read -r applet; do
        [[ "$applet" == bin/busybox ]] && continue
        mkdir -p "$rootfs/$(dirname "$applet")"
        ln -sf /bin/busybox "$rootfs/$applet"
    done < <("$busybox" --list-full)
    printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' \
        >"$rootfs/etc/passwd"
    printf '%s\n' 'root:x:0:' 'nobody:x:65534:' >"$rootfs/etc/group"

    quiet "packing the test image rootfs" \
        tar -C "$rootfs" --numeric-owner --owner=0 --group=0 -cf "$image_workdir/rootfs.tar" .
    quiet "importing $TEST_IMAGE" docker import --message "shoal test image (static busybox)" \
        --change 'ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["sh"]' \
        "$image_workdir/rootfs.tar" "$TEST_IMAGE"
    quiet "tagging $TEST_IMAGE_LATEST" docker tag "$TEST_IMAGE" "$TEST_IMAGE_LATEST"

    local out
    out=$(docker run --rm "$TEST_IMAGE" echo ok 2>&1) || die "test image $TEST_IMAGE does not run: $out"
    [[ "$out" == ok ]] || die "test image $TEST_IMAGE printed '$out' instead of 'ok'"
}

ensure_test_image() {
    if ! command -v docker >/dev/null || ! docker info >/dev/null 2>&1; then
        echo "setup: no Docker engine answers (docker info failed): skipping the test image $TEST_IMAGE" >&2
        image_note="image skipped: no docker engine"
        return 0
    fi
    if ! docker image inspect "$TEST_IMAGE" >/dev/null 2>&1; then
        build_test_image
    fi
    local tag
    for tag in "$TEST_IMAGE_LATEST" "${PEER_TEST_IMAGES[@]}"; do
        if [[ "$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null)" != \
            "$(docker image inspect --format '{{.Id}}' "$TEST_IMAGE")" ]]; then
            quiet "tagging $tag" docker tag "$TEST_IMAGE" "$tag"
        fi
    done
    image_note="image $TEST_IMAGE"
}

# The venv for docker-py's integration tests, rebuilt when the pinned requirements change.
ensure_py_venv() {
    local python stamp want
    python=$(command -v python3 || true)
    [[ -n "$python" ]] || {
        install_debian_packages python3 python3-venv
        python=python3
    }
    want=$(sha256sum "$PY_REQUIREMENTS" | cut -d' ' -f1)
    stamp=$PY_VENV/.shoal-requirements
    if [[ -x "$PY_VENV/bin/python" && "$(cat "$stamp" 2>/dev/null)" == "$want" ]]; then
        return 0
    fi
    rm -rf "$PY_VENV"
    mkdir -p "$(dirname "$PY_VENV")"
    # Debian's own python3 needs python3-venv for `-m venv` (ensurepip).
    if ! "$python" -m venv "$PY_VENV" >/dev/null 2>&1; then
        rm -rf "$PY_VENV"
        install_debian_packages python3-venv
        quiet "creating the venv $PY_VENV" "$python" -m venv "$PY_VENV"
    fi
    quiet "installing $PY_REQUIREMENTS into $PY_VENV" \
        "$PY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$PY_REQUIREMENTS"
    "$PY_VENV/bin/python" -c 'import docker, pytest' >/dev/null 2>&1 ||
        die "docker-py or pytest is not importable in $PY_VENV after installing them"
    echo "$want" >"$stamp"
}

main() {
    install_debian_packages "${APT_PACKAGES[@]}"
    check_rust_toolchain
    image_note=""
    ensure_test_image
    ensure_py_venv
    local protoc
    protoc=$(protoc --version | awk '{ print $2 }')
    echo "setup: ok (rocksdb $(rocksdb_version), protoc $protoc, $image_note)"
}

main "$@"
