#!/usr/bin/env bash
# The whole test suite, as README.md gives it and .ci/run runs it:
#   1. cargo test (release, static): unit, actor, property, simulator and loopback
#      (real processes on 127.0.0.1) tests;
#   2. the Docker failure-injection scripts, when a Docker engine answers.
# Ends with one line "N passed, M failed" counting the suites, then the count
# and the names of the tests and suites that were skipped (a skipped test
# passes in cargo's eyes; here it is listed). Under CI=true a test whose tool
# .ci/run should have installed fails instead of skipping (tests/common skip()).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

# Tests append "name: reason" here when they skip (tests/common/mod.rs).
GOSSIP_SKIP_LOG="$(mktemp "${TMPDIR:-/tmp}/gossip-skipped.XXXXXX")"
export GOSSIP_SKIP_LOG
trap 'rm -f "$GOSSIP_SKIP_LOG"' EXIT

passed=0
failed=0
run() {
    local name=$1
    shift
    echo "=== $name: $*"
    if "$@"; then
        passed=$((passed + 1))
        echo "=== $name: PASS"
    else
        failed=$((failed + 1))
        echo "=== $name: FAIL"
    fi
}

# Built static for x86_64-unknown-linux-gnu, exactly as docker/build.sh
# builds the image's binary, so the Docker suite reuses this build instead of
# compiling everything a second time.
export RUSTFLAGS='-C target-feature=+crt-static'
run cargo-test cargo test --release --target x86_64-unknown-linux-gnu
if docker info >/dev/null 2>&1; then
    run docker-tests bash test/docker_all.sh
else
    echo "=== docker-tests: skipped (no Docker engine answers 'docker info')"
    echo "docker-tests (test/docker_all.sh): no Docker engine answers 'docker info'" >>"$GOSSIP_SKIP_LOG"
fi

echo "suites: $passed passed, $failed failed"
skipped=$(grep -c . "$GOSSIP_SKIP_LOG" || true)
echo "skipped: $skipped"
sed 's/^/  skipped /' "$GOSSIP_SKIP_LOG"
[ "$failed" -eq 0 ]
