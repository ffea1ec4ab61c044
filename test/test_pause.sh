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
sleep "$PAUSE_SECS"
docker-compose unpause node3 >/dev/null 2>&1 || fail "expected 'docker-compose unpause node3' to succeed, saw it fail"
t_pause_ev=$(event_time node3 pause "$t0")
t_unpause_ev=$(event_time node3 unpause "$t0")
log "node3 was frozen for $(secs_between "$t_pause_ev" "$t_unpause_ev") s (Docker's pause and unpause events)"
wait_for "node3 alive in all 7 views after unpause" 30 all alive "$ALL7" "$ALL7"
log "node3 alive in all 7 views again (first look: $(secs_between "$t_unpause_ev" "$DONE_AT") s after the unpause)"
log "watching 6 s more for a late 'dead'"
sleep 6
watch_stop

log "analysis of the recorded views (times relative to the pause; unpaused at +$(secs_between "$t_pause_ev" "$t_unpause_ev")s):"
if ! result=$(probe analyze "$rec" --states dead --targets "$ALL7" --t0 "$t_pause_ev"); then
    echo "$result"
    fail "expected no node ever dead in anyone's view around a ${PAUSE_SECS} s pause, saw: $(grep violating <<<"$result")"
fi
echo "$result"
echo "FIGURE [$TEST_NAME] pause node3 $(secs_between "$t_pause_ev" "$t_unpause_ev") s: never dead anywhere; $(grep 'worst state of node3' <<<"$result")"
wait_for "all 7 alive in all 7 views at the end" 5 all alive "$ALL7" "$ALL7"
