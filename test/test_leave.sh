#!/usr/bin/env bash
# test_leave.sh: `docker-compose stop node3` is a graceful leave.
#
# Proves:
#  1. stop -> node3 "left" in every other node's view (target <= 1 s, timed
#     from the SIGTERM, as Docker's event log records it);
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
wait_bg "node3 left in every other node's view" 15 all left "node3" "$OTHERS"
t0=$(now)
docker-compose stop node3 >/dev/null 2>&1 || fail "expected 'docker-compose stop node3' to succeed, saw it fail"
t_ret=$(now)
wait_collect
t_sig=$(event_time node3 kill "$t0" 15)
figure "stop -> left in every other view (from the SIGTERM)" "$(secs_between "$t_sig" "$DONE_AT")" 1
log "(from 'docker-compose stop' issued: $(secs_between "$t0" "$DONE_AT") s; the CLI sent SIGTERM $(secs_between "$t0" "$t_sig") s after it was issued and returned after $(secs_between "$t0" "$t_ret") s)"

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
wait_bg "node3 alive again in every view" 30 all alive "$ALL7" "$ALL7"
t0=$(now)
docker-compose start node3 >/dev/null 2>&1 || fail "expected 'docker-compose start node3' to succeed, saw it fail"
wait_collect
figure "start after leave -> alive in every view (from the container's start)" "$(secs_between "$(event_time node3 start "$t0")" "$DONE_AT")"
show_views
