#!/usr/bin/env bash
# test_pause.sh: `docker-compose pause node3` for 2 s is not a failure.
#
# Proves, from every node's view sampled every ~100 ms before, during and
# after the pause:
#  1. node3 is never "dead" in anyone's view (suspect is allowed);
#  2. nobody else is declared dead either (node3 wakes with stale timers);
#  3. after `docker-compose unpause node3`, node3 is alive in all 7 views.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PAUSE_SECS="${PAUSE_SECS:-2}"
fresh_start
up
wait_for "node1..node7 alive in every node's view" 30 all alive "$ALL7" "$ALL7"
log "cluster formed"

rec="$GT_TMP/watch.jsonl"
watch_start "$rec" "$ALL7"
sleep 1
log "docker-compose pause node3"
t0=$(now)
docker-compose pause node3 >/dev/null 2>&1 || fail "expected 'docker-compose pause node3' to succeed, saw it fail"
t_paused=$(now)
sleep "$PAUSE_SECS"
t_unpause=$(now)
docker-compose unpause node3 >/dev/null 2>&1 || fail "expected 'docker-compose unpause node3' to succeed, saw it fail"
t_unpaused=$(now)
log "node3 was paused for $(secs_between "$t_paused" "$t_unpause")..$(secs_between "$t0" "$t_unpaused") s"
wait_for "node3 alive in all 7 views after unpause" 30 all alive "$ALL7" "$ALL7"
figure "unpause -> node3 alive in every view" "$(secs_between "$t_unpaused" "$DONE_AT")"
log "watching 6 s more for a late 'dead'"
sleep 6
watch_stop

if ! result=$(probe analyze "$rec" --states dead --targets "$ALL7"); then
    echo "$result"
    fail "expected no node ever dead in anyone's view around a ${PAUSE_SECS} s pause, saw: $(tail -n1 <<<"$result")"
fi
echo "$result"
echo "FIGURE [$TEST_NAME] pause node3 ${PAUSE_SECS} s: never dead anywhere; $(grep 'worst state of node3' <<<"$result")"
wait_for "all 7 alive in all 7 views at the end" 5 all alive "$ALL7" "$ALL7"
