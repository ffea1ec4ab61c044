#!/usr/bin/env bash
# demo.sh: a narrated live demo of Gossip on docker-compose.
#
#   bash demo.sh                 # builds the image if missing, runs, tears down
#   KEEP_CLUSTER=1 bash demo.sh  # leave the demo cluster running afterwards
#   PACE=0 bash demo.sh          # no pauses between steps
#
# Steps: the 7-node cluster forms; node8 joins; a service is looked up;
# node3 leaves gracefully; node4 is killed and detected; node4 restarts and
# rejoins. Uses its own compose project ("gossipdemo") so it never touches a
# cluster you started yourself, and removes it at the end.
export GOSSIP_TEST_PROJECT="${GOSSIP_TEST_PROJECT:-gossipdemo}"
export GT_NO_PASS_LINE=1
source "$(dirname "${BASH_SOURCE[0]}")/test/lib.sh"

PACE="${PACE:-2}"
B=$'\e[1m'; N=$'\e[0m'
[ -t 1 ] || { B=""; N=""; }
step() { echo; echo "${B}==> $*${N}"; }
say() { echo "    $*"; }
run() { echo "${B}\$ $*${N}"; "$@"; }
pace() { sleep "$PACE"; }

# node1's view of one node, narrated as it changes, until it reaches $2
follow() {
    local who=$1 until=$2 limit=$3 t0=$4 last="" s deadline
    deadline=$(( EPOCHSECONDS + limit ))
    while [ "$EPOCHSECONDS" -le "$deadline" ]; do
        s=$(state_of "$who" node1)
        if [ "$s" != "$last" ]; then
            say "+$(secs_between "$t0" "$(now)") s  node1 sees $who: $s"
            last=$s
        fi
        [ "$s" = "$until" ] && return 0
        sleep 0.1
    done
    fail "expected node1 to see $who $until within $limit s, saw $last"
}

step "Gossip demo (compose project: $COMPOSE_PROJECT_NAME)"
say "Each container runs one gossip agent (static binary, FROM scratch image)."
say "Nodes find each other through seeds (node2, node3), gossip membership over"
say "UDP, detect failures by probing, and advertise the services they run."
fresh_start

step "1. docker-compose up -d: seven nodes form a cluster"
run docker-compose up -d --no-build
wait_for "node1..node7 alive in every node's view" 30 all alive "$ALL7" "$ALL7"
say "all 7 nodes are alive in all 7 views $(secs_between "$(started_at $ALL7)" "$DONE_AT") s after the last container started"
run docker-compose exec -T node1 gossip members
pace

step "2. docker-compose up -d node8: a new node joins the running cluster"
run docker-compose up -d --no-build node8
wait_for "node8 alive in all 8 views" 30 all alive "$ALL7 node8" "$ALL7 node8"
say "node8 is alive in every view $(secs_between "$(started_at node8)" "$DONE_AT") s after it started"
run docker-compose exec -T node8 gossip members
pace

step "3. Service discovery: who runs 'web'? (asked at node6, which does not run it)"
run docker-compose exec -T node6 gossip services web
say "and the whole catalogue, as node6 sees it:"
run docker-compose exec -T node6 gossip services
pace

step "4. docker-compose stop node3: a graceful leave (SIGTERM)"
wait_bg "node3 left in every other view" 15 all left node3 "node1 node2 node4 node5 node6 node7 node8"
t0=$(now)
run docker-compose stop node3
wait_collect
say "node3 is 'left' in every other view $(secs_between "$(event_time node3 kill "$t0" 15)" "$DONE_AT") s after it got SIGTERM"
run docker-compose exec -T node1 gossip members
pace

step "5. docker-compose kill node4: a crash (SIGKILL), found by failure detection"
t0=$(now)
run docker-compose kill node4
follow node4 dead 30 "$t0"
wait_for "node4 dead in every survivor's view" 30 all dead node4 "node1 node2 node5 node6 node7 node8"
say "node4 is 'dead' in every survivor's view $(secs_between "$(finished_at node4)" "$DONE_AT") s after it died"
run docker-compose exec -T node1 gossip members
pace

step "6. docker-compose start node4: it restarts and rejoins"
t0=$(now)
run docker-compose start node4
follow node4 alive 30 "$t0"
wait_for "node4 alive in every view" 30 all alive node4 "node1 node2 node4 node5 node6 node7 node8"
say "node4 is alive again in every view $(secs_between "$t0" "$DONE_AT") s after the start"
run docker-compose exec -T node1 gossip members
pace

step "7. Every 10 s each agent logs a STATS line (docker-compose logs node1 | grep STATS)"
docker-compose logs --no-color node1 2>/dev/null | grep STATS | tail -n 2 || say "(no STATS line yet)"

step "Done. Tearing the demo cluster down."
