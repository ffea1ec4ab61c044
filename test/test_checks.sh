#!/usr/bin/env bash
# test_checks.sh: a health-checked instance leaves node1's lookups when what
# its check points at breaks, while its node stays alive; and comes back.
#
#  1. node2 offers `web`, checked by GET http://web:8080/healthz every 1 s;
#     node1 lists it under ?passing;
#  2. `docker-compose stop web` -> gone from node1's ?passing lookup, listed
#     as critical by the plain lookup; node2 still alive in node1's view;
#  3. `docker-compose start web` -> passing again at node1.
#
# Its own compose project (CHECKS_PROJECT, default gossiptestchecks) and file
# (test/checks.compose.yml); always torn down (down -v), on failure too.
# Image: GOSSIP_IMAGE, default gossip:latest (bash docker/build.sh).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PROJECT="${CHECKS_PROJECT:-gossiptestchecks}"
export GOSSIP_IMAGE="${GOSSIP_IMAGE:-gossip:latest}"
DC=(docker-compose -p "$PROJECT" -f test/checks.compose.yml)
T0=$EPOCHREALTIME

log() { echo "[test_checks +$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')s] $*"; }
fail() {
    echo "FAIL [test_checks]: $*" >&2
    "${DC[@]}" logs --tail 15 >&2 || true
    exit 1
}
trap '"${DC[@]}" down -v --remove-orphans >/dev/null 2>&1 || true' EXIT

if ! docker image inspect "$GOSSIP_IMAGE" >/dev/null 2>&1; then
    fail "no image $GOSSIP_IMAGE: run bash docker/build.sh first"
fi

# node1's answer as "node=status ..." (sorted), or "-" when there is none.
lookup() {
    "${DC[@]}" exec -T node1 gossip services web --json $1 2>/dev/null | python3 -c '
import json, sys
try:
    v = json.load(sys.stdin)
except ValueError:
    print("-"); sys.exit()
print(" ".join(sorted("%s=%s" % (i["node"], i["status"]) for i in v)) or "none")'
}
node2_state() {
    "${DC[@]}" exec -T node1 gossip members --json 2>/dev/null | python3 -c '
import json, sys
try:
    print(next((m["state"] for m in json.load(sys.stdin) if m["id"] == "node2"), "absent"))
except ValueError:
    print("-")'
}

# wait_until DESC TIMEOUT EXPECTED CMD...: until CMD prints EXPECTED.
wait_until() {
    local desc=$1 timeout=$2 want=$3; shift 3
    local start=$EPOCHREALTIME got=""
    while awk -v a="$start" -v b="$EPOCHREALTIME" -v t="$timeout" 'BEGIN{exit !(b-a<t)}'; do
        got=$("$@")
        [ "$got" = "$want" ] && return 0
        sleep 0.2
    done
    fail "expected $desc ($want) within ${timeout}s, saw: $got"
}

"${DC[@]}" down -v --remove-orphans >/dev/null 2>&1 || true
"${DC[@]}" up -d >/dev/null 2>&1 || fail "docker-compose up failed"
log "up: web (the checked endpoint), node1, node2"
wait_until "node2 alive at node1" 60 alive node2_state
wait_until "web passing at node1 under ?passing" 60 "node2=passing" lookup --passing

log "docker-compose stop web"
t0=$EPOCHREALTIME
"${DC[@]}" stop -t 5 web >/dev/null 2>&1 || fail "docker-compose stop web failed"
wait_until "web gone from node1's ?passing lookup" 30 none lookup --passing
t1=$EPOCHREALTIME
[ "$(lookup "")" = "node2=critical" ] || fail "expected the plain lookup to list node2=critical, saw $(lookup "")"
[ "$(node2_state)" = alive ] || fail "expected node2 to stay alive, saw $(node2_state)"
echo "FIGURE [test_checks] stop web -> gone from node1's ?passing lookup: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}') s"

log "docker-compose start web"
"${DC[@]}" start web >/dev/null 2>&1 || fail "docker-compose start web failed"
wait_until "web passing again at node1" 60 "node2=passing" lookup --passing
[ "$(node2_state)" = alive ] || fail "expected node2 alive, saw $(node2_state)"
log "PASS"
