#!/usr/bin/env bash
# Resident memory per task and total CPU of an idle Swarm cluster of N tasks
# (default 100) on this one machine: deploy/swarm/stack.yml scaled to N, all
# N listing all N alive, SETTLE seconds of rest, then the RSS of every task's
# agent and the CPU time (utime + stime from /proc) of all of them over
# SECS seconds. Removes the stack afterwards, even on failure; joins a
# single-node swarm only if the engine is in none, and leaves it only then.
#
#   nice -n 10 bash bench/swarm_idle.sh [N] [SECS] [SETTLE]
#
# Heavy (N containers on one host): run it once, on purpose; the test suite
# does not.
set -euo pipefail
export LC_ALL=C
cd "$(dirname "${BASH_SOURCE[0]}")/.."
N=${1:-100}
SECS=${2:-60}
SETTLE=${3:-30}
STACK="${GOSSIP_SWARM_STACK:-ho-idle}"
SVC="${STACK}_gossip"
PROBE=(python3 test/swarm_probe.py "$STACK")
JOINED=0
MADE_GWBRIDGE=0

cleanup() {
    local rc=$?
    set +e
    if [ "$rc" != 0 ]; then
        docker service ps "$SVC" --filter desired-state=shutdown --no-trunc \
            --format '{{.Name}} {{.CurrentState}} {{.Error}}' 2>/dev/null | head -20
    fi
    docker stack rm "$STACK" >/dev/null 2>&1
    for _ in $(seq 1 180); do
        [ -z "$(docker ps -aq --filter "label=com.docker.stack.namespace=$STACK")" ] \
            && ! docker network inspect "${STACK}_gossipnet" >/dev/null 2>&1 && break
        sleep 1
    done
    if [ "$JOINED" = 1 ]; then
        docker swarm leave --force >/dev/null 2>&1
        if [ "$MADE_GWBRIDGE" = 1 ]; then
            for _ in $(seq 1 10); do
                docker network rm docker_gwbridge >/dev/null 2>&1 && break
                sleep 1
            done
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export GOSSIP_IMAGE="${GOSSIP_IMAGE:-gossip:latest}"
docker image inspect "$GOSSIP_IMAGE" >/dev/null 2>&1 || bash docker/build.sh
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" != active ]; then
    docker network inspect docker_gwbridge >/dev/null 2>&1 || MADE_GWBRIDGE=1
    docker swarm init --advertise-addr 127.0.0.1 >/dev/null
    JOINED=1
fi
echo "deploying $STACK and scaling it to $N tasks"
docker stack deploy -c deploy/swarm/stack.yml "$STACK" >/dev/null
start=$EPOCHREALTIME
timeout 1200 docker service scale "$SVC=$N" >/dev/null
returned=$EPOCHREALTIME
done_at=$("${PROBE[@]}" wait --count "$N" --timeout 600) || { echo "not converged: $done_at"; exit 1; }
awk -v a="$start" -v b="$returned" -v c="$done_at" \
    'BEGIN{printf "scale to N took %.0f s; all N list all N alive %.2f s after it returned\n", b-a, c-b}'
echo "resting ${SETTLE} s, then measuring for ${SECS} s"
sleep "$SETTLE"
"${PROBE[@]}" usage --seconds "$SECS"
replaced=$(docker service ps "$SVC" --filter desired-state=shutdown --no-trunc \
    --format '{{.Name}} {{.CurrentState}} {{.Error}}')
echo "tasks Swarm replaced meanwhile: $(printf '%s' "$replaced" | grep -c . || true)"
[ -z "$replaced" ] || printf '%s\n' "$replaced" | head -20
