#!/usr/bin/env bash
# test_failure.sh: `docker-compose kill node3` is detected as a failure.
#
# Proves, in each of ROUNDS rounds (default 3, the figure is the median):
#  1. kill -> node3 "dead" in every survivor's view (target <= 4.5 s, timed
#     from the container's death as Docker records it);
#  2. no survivor is suspected or declared dead by any other survivor;
#  3. `docker-compose start node3` -> node3 rejoins, alive in every view.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ROUNDS="${ROUNDS:-3}"
SURVIVORS="node1 node2 node4 node5 node6 node7"
fresh_start
up
wait_for "node1..node7 alive in every node's view" 30 all alive "$ALL7" "$ALL7"
log "cluster formed"

dead_times=(); rejoin_times=()
for round in $(seq 1 "$ROUNDS"); do
    log "round $round: docker-compose kill node3"
    watch_start "$GT_TMP/round$round.jsonl" "$SURVIVORS"
    wait_bg "node3 dead in every survivor's view" 30 all dead "node3" "$SURVIVORS"
    t0=$(now)
    docker-compose kill node3 >/dev/null 2>&1 || fail "expected 'docker-compose kill node3' to succeed, saw it fail"
    wait_collect
    watch_stop
    died=$(finished_at node3)
    d=$(secs_between "$died" "$DONE_AT")
    dead_times+=("$d")
    figure "round $round: kill -> dead in every survivor's view (from the container's death)" "$d" 4.5
    # how it went: first suspicion, first "dead", as seen by anyone
    probe analyze "$GT_TMP/round$round.jsonl" --states none --targets node3 --t0 "$died" \
        | sed -n 's/^  node3 seen \(.*\) by someone from \([^ ]*\) to .*/\1 first seen by a survivor at \2/p' \
        | sort -t+ -k2 -g | sed "s/^/[$TEST_NAME] round $round: node3 /"
    log "round $round: (from 'docker-compose kill' issued: $(secs_between "$t0" "$DONE_AT") s)"
    wait_for "every survivor alive in every survivor's view" 1 all alive "$SURVIVORS" "$SURVIVORS"

    log "round $round: docker-compose start node3"
    wait_bg "node3 alive again in every view" 30 all alive "$ALL7" "$ALL7"
    t0=$(now)
    docker-compose start node3 >/dev/null 2>&1 || fail "expected 'docker-compose start node3' to succeed, saw it fail"
    wait_collect
    r=$(secs_between "$(event_time node3 start "$t0")" "$DONE_AT")
    rejoin_times+=("$r")
    figure "round $round: start -> node3 alive in every view (from the container's start)" "$r"
done

figure "kill -> dead everywhere, median of $ROUNDS (${dead_times[*]})" "$(median "${dead_times[@]}")" 4.5
figure "restart -> alive everywhere, median of $ROUNDS (${rejoin_times[*]})" "$(median "${rejoin_times[@]}")"
