#!/usr/bin/env bash
# test_join.sh: the cluster forms, a node joins a running cluster, and a node
# with no seeds at all joins by the broadcast bootstrap.
#
# Proves:
#  1. `docker-compose up -d` -> node1..node7 all "alive" in every node's view
#     (figure: time from the last container start; target <= 3 s);
#  2. the user-facing `docker-compose exec -T node1 gossip members --json` works;
#  3. `docker-compose up -d node8` -> node8 alive in all 8 views, and node8's
#     service is found from node1 (GET /v1/services/search);
#  4. `docker-compose up -d node9` (no SEED_NODES, BROADCAST=true) -> node9
#     alive in all 9 views: phase-2 bootstrap by broadcast inside gossipnet.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

fresh_start

log "docker-compose up -d (node1..node7)"
wait_bg "node1..node7 alive in every node's view" 40 all alive "$ALL7" "$ALL7"
up
started=$(started_at $ALL7)
log "containers started $(secs_between "$UP_ISSUED" "$started") s after the command; waiting for every view"
wait_collect
figure "up -d -> all 7 alive in every view (from last container start)" "$(secs_between "$started" "$DONE_AT")" 3
figure "up -d -> all 7 alive in every view (from 'docker-compose up -d' issued)" "$(secs_between "$UP_ISSUED" "$DONE_AT")"
show_views

log "user-facing check: docker-compose exec -T node1 gossip members --json"
json=$(members_json node1) || fail "expected 'docker-compose exec -T node1 gossip members --json' to exit 0, saw it fail"
n=$(printf '%s' "$json" | python3 -c 'import json,sys; v=json.load(sys.stdin); print(sum(1 for m in v if m["state"]=="alive"))') \
    || fail "expected a JSON array from gossip members --json, saw: $json"
[ "$n" = 7 ] || fail "expected 7 alive members in node1's JSON view, saw $n: $json"
log "node1 reports 7 alive members"

log "docker-compose up -d node8 (joins the running cluster through its seeds)"
wait_bg "node8 alive in all 8 views" 30 all alive "$ALL7 node8" "$ALL7 node8"
up node8
started8=$(started_at node8)
wait_collect
figure "node8 start -> alive in all 8 views" "$(secs_between "$started8" "$DONE_AT")"

log "node1 looks up node8's service 'search'"
deadline=$(( ${EPOCHSECONDS} + 15 )); found=""
while [ "$EPOCHSECONDS" -le "$deadline" ]; do
    out=$(docker exec "$(cid node1)" gossip services search --json 2>/dev/null || true)
    found=$(printf '%s' "$out" | python3 -c 'import json,sys
try: v=json.load(sys.stdin)
except Exception: v=[]
print(" ".join(sorted(i.get("node","?") for i in v if isinstance(i, dict))))' 2>/dev/null || true)
    [ "$found" = node8 ] && break
    sleep 0.2
done
[ "$found" = node8 ] || fail "expected node1 to find service 'search' on node8, saw: ${out:-nothing}"
log "node1 found 'search' on node8"

log "docker-compose up -d node9 (no SEED_NODES: broadcast bootstrap only)"
wait_bg "node9 (no seeds) alive in all 9 views" 60 all alive "$ALL7 node8 node9" "$ALL7 node8 node9"
up node9
started9=$(started_at node9)
wait_collect
figure "node9 (broadcast bootstrap) start -> alive in all 9 views" "$(secs_between "$started9" "$DONE_AT")"
show_views
