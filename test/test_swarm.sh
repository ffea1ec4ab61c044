#!/usr/bin/env bash
# test/test_swarm.sh: the Swarm stack (deploy/swarm/stack.yml) on this engine.
#
#   bash test/test_swarm.sh          # from the repository root or from test/
#
# 1. Joins a single-node swarm only if the engine is not in one already
#    (`docker swarm init --advertise-addr 127.0.0.1`), and leaves it at the
#    end only if it joined it here.
# 2. Deploys the stack (5 tasks, SEED_NODES=tasks.gossip:7946, NODE_ID and
#    NODE_IP unset) and waits until every task lists every task alive.
# 3. `docker service scale ..=50`: all 50 tasks list all 50 alive
#    (FIGURE: from the command returning).
# 4. `docker service scale ..=20`: each removed task is `left` in every
#    remaining view, never suspect or dead (FIGURE: worst task, from its
#    SIGTERM; target 1 s).
# 5. `docker kill` of one task's container: `dead` in every other view
#    (FIGURE from its death, target 4.5 s; `dead` then forgotten also passes,
#    see DeadWatch in test/swarm_probe.py), and Swarm's replacement task is
#    alive in every view (FIGURE from its container's start, target 1 s).
# 6. Always (trap, on failure too): `docker stack rm`, waits for its
#    containers and network to go, leaves the swarm and removes
#    docker_gwbridge if it created them, stops the probe it started.
#
# Behaviour is asserted with generous bounds; the timings are FIGURE lines,
# and STRICT_FIGURES=1 turns a missed target into a failure. Traffic goes
# only to the containers of this stack (their API on 127.0.0.1 inside each
# task's network namespace; see test/swarm_probe.py).
set -euo pipefail
export LC_ALL=C
cd "$(dirname "${BASH_SOURCE[0]}")/.."

STACK="${GOSSIP_SWARM_STACK:-ho-swarm}"
SVC="${STACK}_gossip"
IMAGE="${GOSSIP_IMAGE:-gossip:latest}"
export GOSSIP_IMAGE="$IMAGE"
STRICT_FIGURES="${STRICT_FIGURES:-0}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/gossip-swarm.XXXXXX")"
PROBE=(python3 test/swarm_probe.py "$STACK")
JOINED_SWARM=0
MADE_GWBRIDGE=0
REC_PID=""
EV_PID=""
FAILED=0
T0=$EPOCHREALTIME

log() { echo "[test_swarm +$(awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN{printf "%.1f", b-a}')s] $*"; }
fail() { FAILED=1; echo "FAIL [test_swarm]: $*" >&2; exit 1; }
figure() {   # figure NAME SECONDS TARGET
    local verdict="met"
    awk -v s="$2" -v t="$3" 'BEGIN{exit !(s<=t)}' || verdict="NOT MET"
    echo "FIGURE [test_swarm] $1: $2 s  (target <= $3 s: $verdict)"
    if [ "$verdict" != met ] && [ "$STRICT_FIGURES" = 1 ]; then
        fail "expected $1 <= $3 s, saw $2 s"
    fi
}

# wait_gone: until the stack's containers and network are gone (Docker
# removes them in the background after `docker stack rm`)
wait_gone() {
    for _ in $(seq 1 120); do
        if [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] \
            && ! docker network inspect "${STACK}_gossipnet" >/dev/null 2>&1; then
            return 0
        fi
        sleep 1
    done
    return 1
}

cleanup() {
    local rc=$?
    set +e
    trap - EXIT INT TERM
    [ -n "$REC_PID" ] && kill "$REC_PID" 2>/dev/null && wait "$REC_PID" 2>/dev/null
    [ -n "$EV_PID" ] && kill "$EV_PID" 2>/dev/null && wait "$EV_PID" 2>/dev/null
    if [ "$rc" != 0 ] || [ "$FAILED" = 1 ]; then
        echo "---- [test_swarm] tasks and views at failure:" >&2
        docker service ps --no-trunc "$SVC" 2>&1 | head -30 >&2
        "${PROBE[@]}" table 2>&1 | head -60 >&2
        docker service logs --tail 5 "$SVC" 2>&1 | tail -40 >&2
    fi
    log "teardown: docker stack rm $STACK"
    docker stack rm "$STACK" >/dev/null 2>&1
    wait_gone || echo "[test_swarm] WARNING: containers or the network of $STACK are still there" >&2
    if [ "$JOINED_SWARM" = 1 ]; then
        log "teardown: docker swarm leave --force (this test joined it)"
        docker swarm leave --force >/dev/null 2>&1
        if [ "$MADE_GWBRIDGE" = 1 ]; then
            # its ingress endpoint lingers for a while after the leave
            for _ in $(seq 1 10); do
                docker network rm docker_gwbridge >/dev/null 2>&1 && break
                sleep 1
            done
        fi
    fi
    rm -rf "$TMP"
    [ "$rc" = 0 ] && [ "$FAILED" = 0 ] && echo "PASS [test_swarm]"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo "[test_swarm] interrupted" >&2; exit 130' INT TERM

# ---------------------------------------------------------------- set-up

command -v docker >/dev/null 2>&1 || fail "expected the docker client on PATH, saw none"
command -v python3 >/dev/null 2>&1 || fail "expected python3 on PATH, saw none"
timeout 30 docker info >/dev/null 2>&1 || fail "expected a Docker engine answering 'docker info', saw none"
# the probe's verdicts on synthetic views first: a mistake there would cost a
# ten-minute run
python3 test/swarm_probe.py --self-test >/dev/null || fail "expected 'swarm_probe.py --self-test' to pass, saw: $(python3 test/swarm_probe.py --self-test 2>&1 | head -5)"
[ "$(id -u)" = 0 ] || fail "expected to run as root (the probe enters the tasks' network namespaces), saw uid $(id -u)"
if [ "${GOSSIP_REBUILD:-0}" = 1 ] || ! docker image inspect "$IMAGE" >/dev/null 2>&1; then
    [ "$IMAGE" = gossip:latest ] || fail "expected the image GOSSIP_IMAGE=$IMAGE, saw none"
    log "building the binary and the image (bash docker/build.sh)"
    bash docker/build.sh >"$TMP/build.log" 2>&1 || { tail -30 "$TMP/build.log" >&2; fail "expected docker/build.sh to build $IMAGE"; }
fi

state=$(docker info --format '{{.Swarm.LocalNodeState}}')
if [ "$state" != active ]; then
    docker network inspect docker_gwbridge >/dev/null 2>&1 || MADE_GWBRIDGE=1
    log "the engine is not in a swarm ($state): docker swarm init --advertise-addr 127.0.0.1"
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null || fail "expected 'docker swarm init' to succeed"
    JOINED_SWARM=1
else
    log "the engine is already in a swarm: using it, and leaving it as it is"
fi
# Whatever an interrupted run left behind.
if docker stack ls --format '{{.Name}}' | grep -qx "$STACK"; then
    docker stack rm "$STACK" >/dev/null
fi
wait_gone || fail "expected the remains of an earlier $STACK to go, saw them stay"

# scale N: `docker service scale`, which returns once the tasks run (healthy).
scale() {
    timeout 600 docker service scale "$SVC=$1" >"$TMP/scale.log" 2>&1 \
        || { tail -20 "$TMP/scale.log" >&2; fail "expected 'docker service scale $SVC=$1' to converge"; }
}
# converge N TIMEOUT [DEAD_HOST]: every one of N running tasks lists all N
# alive (and DEAD_HOST dead)
converge() {
    local out
    out=$("${PROBE[@]}" wait --count "$1" --timeout "$2" ${3:+--dead "$3"}) \
        || fail "expected $1 tasks each listing all $1 alive${3:+ and $3 dead} within $2 s, saw: $out"
    DONE_AT=$out
}
# record_start NAME: every task's view every ~0.2 s into $TMP/NAME.jsonl, and
# the stack's container events as they happen into $TMP/NAME.events
record_start() {
    docker events --filter "label=com.docker.stack.namespace=$STACK" --filter type=container \
        --format '{{json .}}' >"$TMP/$1.events" &
    EV_PID=$!
    "${PROBE[@]}" record --out "$TMP/$1.jsonl" &
    REC_PID=$!
    sleep 1
}
record_stop() {
    kill "$REC_PID" "$EV_PID" 2>/dev/null
    wait "$REC_PID" "$EV_PID" 2>/dev/null || true
    REC_PID="" EV_PID=""
}

# ---------------------------------------------------------------- 5 tasks

log "docker stack deploy -c deploy/swarm/stack.yml $STACK"
docker stack deploy -c deploy/swarm/stack.yml "$STACK" >/dev/null || fail "expected 'docker stack deploy' to succeed"
converge 5 180
log "5 tasks, each lists all 5 alive"

# ---------------------------------------------------------------- 5 -> 50

log "docker service scale $SVC=50"
scale 50
returned=$EPOCHREALTIME
converge 50 240
figure "scale 5 -> 50: from 'docker service scale' returning to all 50 listing all 50 alive" \
    "$(awk -v a="$returned" -v b="$DONE_AT" 'BEGIN{d=b-a; if (d<0) d=0; printf "%.2f", d}')" 10

# ---------------------------------------------------------------- 50 -> 20

log "docker service scale $SVC=20 (30 graceful leaves)"
record_start down
scale 20
converge 20 120
sleep 2
record_stop
"${PROBE[@]}" leave "$TMP/down.jsonl" --events "$TMP/down.events" | tee "$TMP/leave.out" \
    || fail "expected each removed task left in every remaining view and never suspect or dead (above)"
figure "scale 50 -> 20: worst removed task, from its SIGTERM to left in all 20 views" \
    "$(awk '/^LEAVE_MAX/{print $2}' "$TMP/leave.out")" 1

# ---------------------------------------------------------------- kill one

read -r victim victim_host < <("${PROBE[@]}" pick) || fail "expected a running task to kill"
"${PROBE[@]}" hosts >"$TMP/before.json"
log "docker kill $victim_host (SIGKILL); Swarm starts a replacement task"
record_start kill
docker kill "$victim" >/dev/null || fail "expected 'docker kill $victim' to succeed"
# Swarm's replacement task and the others: all 20 list all 20 alive, and the
# killed one dead (or, where it was seen dead, already forgotten: its
# tombstone goes 60 s after, and the replacement may take longer to start)
converge 20 120 "$victim_host"
sleep 1
record_stop
"${PROBE[@]}" kill "$TMP/kill.jsonl" --victim "$victim" --events "$TMP/kill.events" --before "$TMP/before.json" \
    | tee "$TMP/kill.out" || fail "expected the killed task dead everywhere and its replacement alive everywhere (above)"
figure "killed task: from its container's death to dead in every other view" \
    "$(awk '/^DEAD/{print $2}' "$TMP/kill.out")" 4.5
figure "replacement task: from its container's start to alive in every other view" \
    "$(awk '/^REPLACED/{print $2}' "$TMP/kill.out")" 1
log "done"
