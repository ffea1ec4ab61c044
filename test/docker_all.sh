#!/usr/bin/env bash
# test/docker_all.sh: run the Docker test scripts in sequence.
#
#   bash test/docker_all.sh
#
# - If no Docker engine answers `docker info`, says so and exits 0 (skipped).
# - Builds the static binary and the image once (bash docker/build.sh), so the
#   scripts test the current code; GOSSIP_SKIP_BUILD=1 reuses gossip:latest.
# - Runs test_join, test_leave, test_failure, test_partition, test_pause,
#   test_checks, test_dns; each brings its own cluster up (project "gossiptest";
#   test_checks: "gossiptestchecks") and always tears it down.
#   Then test_swarm: the Swarm stack on a single-node swarm (joined only if
#   the engine is in none, and left afterwards only then).
# - Prints PASS/FAIL per script, the FIGURE lines (timings measured), and a
#   last line "N passed, M failed"; exits non-zero if any script failed.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TESTS=(test_join test_leave test_failure test_partition test_pause test_checks test_dns test_swarm)
PER_TEST_TIMEOUT="${PER_TEST_TIMEOUT:-900}"

if ! command -v docker >/dev/null 2>&1 || ! timeout 30 docker info >/dev/null 2>&1; then
    echo "docker_all: no Docker engine answers 'docker info': Docker tests skipped"
    exit 0
fi
if ! command -v docker-compose >/dev/null 2>&1; then
    echo "docker_all: a Docker engine answers but docker-compose is not installed"
    echo "0 passed, ${#TESTS[@]} failed"
    exit 1
fi

out="$(mktemp -d "${TMPDIR:-/tmp}/gossip-docker-all.XXXXXX")"
trap 'rm -rf "$out"' EXIT

if [ "${GOSSIP_SKIP_BUILD:-0}" != 1 ]; then
    echo "==== docker_all: bash docker/build.sh"
    if ! bash docker/build.sh; then
        echo "docker_all: building the binary and the image failed"
        for t in "${TESTS[@]}"; do echo "FAIL $t (not run: build failed)"; done
        echo "0 passed, ${#TESTS[@]} failed"
        exit 1
    fi
fi

pass=0; failed=0; results=()
for t in "${TESTS[@]}"; do
    echo "==== docker_all: $t"
    start=$EPOCHSECONDS
    timeout --kill-after=60 "$PER_TEST_TIMEOUT" bash "test/$t.sh" 2>&1 | tee "$out/$t.log"
    rc=${PIPESTATUS[0]}
    secs=$(( EPOCHSECONDS - start ))
    if [ "$rc" = 0 ]; then
        pass=$((pass + 1)); results+=("PASS $t (${secs} s)")
    else
        failed=$((failed + 1)); results+=("FAIL $t (exit $rc, ${secs} s)")
    fi
done

echo "==== docker_all: figures"
for t in "${TESTS[@]}"; do grep -h '^FIGURE' "$out/$t.log" 2>/dev/null; done
echo "==== docker_all: results"
printf '%s\n' "${results[@]}"
echo "$pass passed, $failed failed"
[ "$failed" = 0 ]
