#!/usr/bin/env bash
# test_partition.sh: cut node5 off the network for longer than the suspicion
# timeout, reconnect it, and check the cluster merges back.
#
# Proves:
#  1. `docker network disconnect` of node5 -> node5 dead in every other view
#     (so the partition did outlast the suspicion timeout), and no other node
#     is declared dead meanwhile;
#  2. the partition is held PARTITION_SECS (default 12) in all;
#  3. `docker network connect` (same alias) -> within 60 s all 7 nodes alive in
#     all 7 views: nobody live is left dead on either side.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PARTITION_SECS="${PARTITION_SECS:-12}"
VICTIM=node5
OTHERS="node1 node2 node3 node4 node6 node7"
fresh_start
up
wait_for "node1..node7 alive in every node's view" 30 all alive "$ALL7" "$ALL7"
log "cluster formed"

vcid=$(cid "$VICTIM")
log "docker network disconnect $GT_NET $VICTIM"
wait_bg "$VICTIM dead in every other node's view while partitioned" 30 all dead "$VICTIM" "$OTHERS"
t0=$(now)
docker network disconnect "$GT_NET" "$vcid" || fail "expected to disconnect $VICTIM from $GT_NET, saw it fail"
wait_collect
figure "partition -> $VICTIM dead on the majority side" "$(secs_between "$t0" "$DONE_AT")"
wait_for "no node of the majority side suspect/dead in the majority's views" 1 all alive "$OTHERS" "$OTHERS"
log "$VICTIM's own view while cut off:"; probe table "$VICTIM" || true

rest=$(awk -v a="$t0" -v b="$EPOCHREALTIME" -v p="$PARTITION_SECS" 'BEGIN{r=p-(b-a); printf "%.1f", (r>0?r:0)}')
log "holding the partition another $rest s"
sleep "$rest"

log "$VICTIM's own view at the end of the partition:"; probe table "$VICTIM" || true
log "docker network connect --alias $VICTIM $GT_NET $VICTIM"
wait_bg "all 7 alive in all 7 views after the heal" 60 all alive "$ALL7" "$ALL7"
t1=$(now)
docker network connect --alias "$VICTIM" "$GT_NET" "$vcid" || fail "expected to reconnect $VICTIM to $GT_NET, saw it fail"
log "partition held $(secs_between "$t0" "$t1") s"
wait_collect
figure "heal -> all 7 alive in every view" "$(secs_between "$t1" "$DONE_AT")"
show_views
