#!/usr/bin/env bash
# CPU cost of encryption: 20 agents on 127.0.0.1 with fast probing and gossip
# (PROBE_INTERVAL_MS=100, GOSSIP_INTERVAL_MS=20, a service registered every
# second so that rumors flow), run for SECS seconds in plaintext and then with
# GOSSIP_KEY; prints the CPU seconds (utime + stime) of all 20 processes.
#   bash bench/crypto_cpu.sh [BIN] [SECS]
set -euo pipefail
BIN=${1:-target/release/gossip}
SECS=${2:-30}
N=20
BASE=$((30000 + RANDOM % 20000))
TICK=$(getconf CLK_TCK)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill -9 "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

run() {
    local key=$1; pids=()
    for i in $(seq 0 $((N - 1))); do
        NODE_ID=n$i NODE_PORT=$((BASE + i)) BIND_ADDR=127.0.0.1:$((BASE + i)) API_ADDR=127.0.0.1:$((BASE + 1000 + i)) \
        SEED_NODES=127.0.0.1:$BASE CLUSTER_NAME=cpu$BASE GOSSIP_KEY=$key PROBE_INTERVAL_MS=100 PROBE_TIMEOUT_MS=50 \
        GOSSIP_INTERVAL_MS=20 RUST_LOG=warn "$BIN" agent >/dev/null 2>&1 &
        pids+=($!)
    done
    sleep 3
    local start=0 end=0
    for p in "${pids[@]}"; do start=$((start + $(awk '{print $14 + $15}' /proc/$p/stat))); done
    for s in $(seq 1 "$SECS"); do
        curl -s -o /dev/null -X PUT -H 'Content-Type: application/json' \
            -d "{\"name\":\"svc\",\"port\":$((1000 + s))}" "127.0.0.1:$((BASE + 1000))/v1/services" || true
        sleep 1
    done
    for p in "${pids[@]}"; do end=$((end + $(awk '{print $14 + $15}' /proc/$p/stat))); done
    cleanup
    BASE=$((BASE + 2 * N))
    echo "scale=2; ($end - $start) / $TICK" | bc
}

plain=$(run "")
keyed=$(run "$("$BIN" keygen)")
echo "20 agents, ${SECS} s: plaintext ${plain} CPU s, encrypted ${keyed} CPU s, ratio $(echo "scale=3; $keyed / $plain" | bc)"
