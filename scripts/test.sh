#!/usr/bin/env bash
# Sets up the machine (scripts/setup.sh) and runs the whole test suite: formatting, clippy, every
# test under cargo-nextest (.config/nextest.toml), then the doc tests. This is what CI runs (.ci/run).
# Every step runs even if an earlier one failed; the exit status is non-zero if any failed.
# Extra arguments go to `cargo nextest run` (e.g. a test filter: scripts/test.sh store::watch).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh

# Under CI keep the build outside the work tree so it is paid once per machine.
if [[ -z "${CARGO_TARGET_DIR:-}" && -n "${CI:-}" ]]; then
    export CARGO_TARGET_DIR="$HOME/.cache/shoal-target"
fi
nextest_profile=default
[[ -n "${CI:-}" ]] && nextest_profile=ci

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "test: cargo-nextest is missing, installing it (cargo install cargo-nextest --locked)" >&2
    cargo install --quiet cargo-nextest --locked
fi

failed=()
step() {
    local name=$1
    shift
    echo "==> $name: $*"
    if ! "$@"; then
        echo "==> $name FAILED" >&2
        failed+=("$name")
    fi
}

step fmt cargo fmt --all -- --check
step clippy cargo clippy --workspace --all-targets -- -D warnings
step tests cargo nextest run --workspace --no-fail-fast --profile "$nextest_profile" "$@"
step doctests cargo test --workspace --doc

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "test: FAILED steps: ${failed[*]}" >&2
    exit 1
fi
echo "test: all steps passed"
