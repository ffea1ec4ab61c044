#!/usr/bin/env bash
# bench/dns.sh: the agent's DNS server against Debian's nsd, and the agent's
# memory with DNS serving against DNS off. Everything on 127.0.0.1.
#
#   bash bench/dns.sh            # SECS=10 per throughput run
#
# 1. examples/dns_serve publishes a snapshot of 1,000 members offering 1,000
#    services x 3 instances and serves it with gossip::dns (the agent's DNS
#    code); it also writes the same records as a zone file, which nsd (one
#    server process) serves. The same dnsperf commands run against both:
#      throughput: dnsperf -c 4 -q 100 -l SECS       (saturating: qps)
#      latency:    dnsperf -Q 5000 -l 5 -v           (steady rate: percentiles
#                  of each query's latency, from dnsperf's per-query lines)
#    over one query file: random services, half A and half SRV.
# 2. One real agent (30 services) with DNS serving dnsperf for 5 s, against
#    the same agent with DNS_ADDR=off idle as long: VmRSS of each.
# Needs dnsperf, nsd, dig (bash .ci/install-dns.sh --bench).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
SECS=${SECS:-10}
for t in dnsperf nsd dig; do
    command -v $t >/dev/null || { echo "bench/dns.sh: $t missing (bash .ci/install-dns.sh --bench)"; exit 1; }
done
cargo build --release -q --example dns_serve --bin gossip
BIN=target/release/gossip
SERVE=target/release/examples/dns_serve

tmp=$(mktemp -d "${TMPDIR:-/tmp}/gossip-dns-bench.XXXXXX")
pids=()
cleanup() {
    for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

base=$((30000 + RANDOM % 20000))
P_GOSSIP=$base; P_NSD=$((base + 1)); P_AGENT_DNS=$((base + 2))

wait_dns() { # port name
    for _ in $(seq 1 100); do
        dig @127.0.0.1 -p "$1" +time=1 +tries=1 +short "$2" | grep -q . && return 0
        sleep 0.1
    done
    echo "no DNS answer on port $1"; exit 1
}

awk -v seed=$RANDOM 'BEGIN { srand(seed); for (i = 0; i < 20000; i++) {
    s = int(rand() * 1000); printf "svc%d.service.gossip %s\n", s, (i % 2 ? "SRV" : "A") } }' > "$tmp/queries.txt"

nice -n 10 "$SERVE" "$P_GOSSIP" "$tmp/gossip.zone" > "$tmp/serve.log" 2>&1 &
pids+=($!); serve_pid=$!
wait_dns "$P_GOSSIP" svc1.service.gossip

cat > "$tmp/nsd.conf" <<CONF
server:
    port: $P_NSD
    ip-address: 127.0.0.1
    do-ip6: no
    server-count: 1
    username: ""
    chroot: ""
    zonesdir: "$tmp"
    pidfile: "$tmp/nsd.pid"
    xfrdfile: "$tmp/xfrd.state"
    zonelistfile: "$tmp/zone.list"
    database: ""
    logfile: "$tmp/nsd.log"
    verbosity: 1
remote-control:
    control-enable: no
zone:
    name: gossip.
    zonefile: gossip.zone
CONF
nice -n 10 nsd -d -c "$tmp/nsd.conf" > "$tmp/nsd.out" 2>&1 &
pids+=($!)
wait_dns "$P_NSD" svc1.service.gossip

# The answers match (same records, any order).
for q in "svc7.service.gossip A" "svc7.service.gossip SRV" "n7.node.gossip A"; do
    a=$(dig @127.0.0.1 -p "$P_GOSSIP" +short $q | sort); b=$(dig @127.0.0.1 -p "$P_NSD" +short $q | sort)
    [ "$a" = "$b" ] || { echo "answers differ for $q:"; echo "$a"; echo "--"; echo "$b"; exit 1; }
done

throughput() { # port -> "qps avg_latency_s lost"
    nice -n 10 dnsperf -s 127.0.0.1 -p "$1" -d "$tmp/queries.txt" -l "$SECS" -c 4 -q 100 2>&1 |
        awk '/Queries per second/ {q=$4} /Average Latency/ {l=$4} /Queries lost/ {lost=$3} END {print q, l, lost}'
}
latency() { # port -> "p50 p90 p99 p99.9 (ms)"
    nice -n 10 dnsperf -s 127.0.0.1 -p "$1" -d "$tmp/queries.txt" -l 5 -Q 5000 -v 2>/dev/null |
        awk '$1 == ">" {print $NF}' | sort -g | awk '{v[NR] = $1} END {
            n = NR; split("0.5 0.9 0.99 0.999", ps, " ")
            for (i = 1; i <= 4; i++) { k = int(ps[i] * n); if (k < 1) k = 1; printf "%.3f ", v[k] * 1000 }
            printf "(%d queries)\n", n }'
}

echo "== dnsperf, 1,000 services x 3 instances, half A half SRV"
g=$(throughput "$P_GOSSIP"); n=$(throughput "$P_NSD")
echo "gossip: qps avg_latency_s lost = $g"
echo "nsd:    qps avg_latency_s lost = $n"
awk -v g="${g%% *}" -v n="${n%% *}" 'BEGIN { printf "FIGURE dns_qps gossip %.0f nsd %.0f ratio %.2f\n", g, n, g / n }'
echo "FIGURE dns_latency_ms gossip p50 p90 p99 p99.9 = $(latency "$P_GOSSIP")"
echo "FIGURE dns_latency_ms nsd    p50 p90 p99 p99.9 = $(latency "$P_NSD")"
echo "FIGURE dns_serve_rss_kb (1,000 members, 3,000 instances, after the runs) $(awk '/VmRSS/ {print $2}' /proc/$serve_pid/status)"

echo "== memory: one agent, 30 services, DNS serving vs DNS off"
svcs=$(seq -s, -f 'svc%g:80' 0 29)
awk -v seed=$RANDOM 'BEGIN { srand(seed); for (i = 0; i < 2000; i++)
    printf "svc%d.service.gossip %s\n", int(rand() * 30), (i % 2 ? "SRV" : "A") }' > "$tmp/agent_queries.txt"
rss_of_agent() { # dns_addr -> VmRSS kB after 5 s (serving dnsperf when DNS is on)
    local port=$((base + 10 + RANDOM % 1000))
    NODE_ID=bench NODE_PORT=$port BIND_ADDR=127.0.0.1:$port API_ADDR=127.0.0.1:$((port + 1000)) \
        DNS_ADDR=$1 SERVICES=$svcs CLUSTER_NAME=dnsbench$base RUST_LOG=warn \
        nice -n 10 "$BIN" agent > "$tmp/agent.log" 2>&1 &
    local pid=$!; pids+=($pid)
    sleep 1
    if [ "$1" != off ]; then
        wait_dns "${1##*:}" svc1.service.gossip
        nice -n 10 dnsperf -s 127.0.0.1 -p "${1##*:}" -d "$tmp/agent_queries.txt" -l 5 -c 4 -q 100 > /dev/null 2>&1
    else
        sleep 5
    fi
    awk '/VmRSS/ {print $2}' /proc/$pid/status
    kill "$pid"; wait "$pid" 2>/dev/null || true
}
on=$(rss_of_agent "127.0.0.1:$P_AGENT_DNS"); off=$(rss_of_agent off)
echo "FIGURE agent_rss_kb dns_serving $on dns_off $off"
