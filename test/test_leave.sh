#!/usr/bin/env bash
# test_leave.sh: `docker-compose stop node3` is a graceful leave.
#
# Proves:
#  1. stop -> node3 "left" in every other node's view (target <= 1 s);
#  2. the agent exited by itself with code 0 on SIGTERM (not killed after
#     stop_grace_period);
#  3. "left" is not later turned into "dead" (or "suspect") by failure detection;
#  4. `docker-compose start node3` -> node3 rejoins, alive in every view.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

OTHERS="node1 node2 node4 node5 node6 node7"
fresh_start
up
wait_for "node1..node7 alive in every node's view" 30 all alive "$ALL7" "$ALL7"
log "cluster formed"

log "docker-compose stop node3"
t0=$(now)
docker-compose stop node3 >/dev/null 2>&1 || fail "expected 'docker-compose stop node3' to succeed, saw it fail"
t_ret=$(now)
wait_for "node3 left in every other node's view" 15 all left "node3" "$OTHERS"
figure "stop -> left in every other view (from 'docker-compose stop' issued)" "$(secs_between "$t0" "$DONE_AT")" 1
log "docker-compose stop itself returned after $(secs_between "$t0" "$t_ret") s"

code=$(probe exitcode node3)
[ "$code" = 0 ] || fail "expected node3 to exit 0 on SIGTERM (graceful leave), saw exit code $code"
stop_secs=$(secs_between "$t0" "$t_ret")
awk -v s="$stop_secs" 'BEGIN{exit !(s < 9)}' \
    || fail "expected node3 to exit well within stop_grace_period (10 s), saw docker-compose stop take $stop_secs s"

log "watching 8 s: node3 must stay left (never suspect/dead)"
sleep 8
wait_for "node3 still left (or removed) in every other view" 1 all "left|absent" "node3" "$OTHERS"
log "node3 is still left everywhere"

log "docker-compose start node3"
t0=$(now)
docker-compose start node3 >/dev/null 2>&1 || fail "expected 'docker-compose start node3' to succeed, saw it fail"
wait_for "node3 alive again in every view" 30 all alive "$ALL7" "$ALL7"
figure "start after leave -> alive in every view" "$(secs_between "$t0" "$DONE_AT")"
show_views
