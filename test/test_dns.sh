#!/usr/bin/env bash
# test_dns.sh: dig from the host at node1's address answers for the cluster.
#
# Proves:
#  1. `dig @<node1's address> -p 8600 web.service.gossip` gives the addresses
#     of the five nodes offering web (node1, 2, 3, 5, 7), and the SRV form
#     gives their ports (8080 for node5, NODE_PORT for the others), over UDP
#     and TCP; node3.node.gossip gives node3's address;
#  2. `docker-compose kill node3` -> node3's address leaves node1's answer
#     (figure: from the container's death; it follows node1's view);
#  3. an unknown name gets NXDOMAIN, a name outside the domain REFUSED.
# Talks only to the containers it created (their bridge addresses).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

command -v dig >/dev/null 2>&1 || fail "expected dig on PATH (bash .ci/install-dns.sh), saw none"
fresh_start
up
wait_for "node1..node7 alive in every node's view" 30 all alive "$ALL7" "$ALL7"

ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$(cid "$1")"; }
N1=$(ip_of node1)
[ -n "$N1" ] || fail "expected node1 to have a bridge address, saw none"
q() { dig @"$N1" -p 8600 +time=2 +tries=2 "$@"; }
want_a=$(for n in node1 node2 node3 node5 node7; do ip_of $n; done | sort | tr '\n' ' ')
log "node1 answers DNS at $N1:8600; web should be on: $want_a"

deadline=$((EPOCHSECONDS + 30)); got=""
while [ "$EPOCHSECONDS" -le "$deadline" ]; do
    got=$(q +short web.service.gossip A | sort | tr '\n' ' ')
    [ "$got" = "$want_a" ] && break
    sleep 0.3
done
[ "$got" = "$want_a" ] || fail "expected web.service.gossip A = $want_a, saw: $got"
for mode in +notcp +tcp; do
    srv=$(q $mode +short _web._tcp.service.gossip SRV | sort)
    for n in 1 2 3 5 7; do
        port=$((8000 + n)); [ $n = 5 ] && port=8080
        printf '%s\n' "$srv" | grep -qx "1 1 $port node$n.node.gossip." \
            || fail "expected SRV '1 1 $port node$n.node.gossip.' ($mode), saw: $srv"
    done
done
n3=$(q +short node3.node.gossip)
[ "$n3" = "$(ip_of node3)" ] || fail "expected node3.node.gossip = $(ip_of node3), saw $n3"
st=$(q nope.service.gossip | sed -n 's/.*status: \([A-Z]*\),.*/\1/p')
[ "$st" = NXDOMAIN ] || fail "expected NXDOMAIN for nope.service.gossip, saw $st"
st=$(q example.com | sed -n 's/.*status: \([A-Z]*\),.*/\1/p')
[ "$st" = REFUSED ] || fail "expected REFUSED for example.com, saw $st"
log "A, SRV (UDP and TCP), node, NXDOMAIN and REFUSED answers as expected"

ip3=$(ip_of node3)
docker-compose kill node3 >/dev/null 2>&1 || fail "expected 'docker-compose kill node3' to succeed"
deadline=$((EPOCHSECONDS + 30)); gone=""
while [ "$EPOCHSECONDS" -le "$deadline" ]; do
    if ! q +short web.service.gossip A | grep -qx "$ip3"; then gone=$(now); break; fi
    sleep 0.05
done
[ -n "$gone" ] || fail "expected node3's address $ip3 to leave node1's answer within 30 s"
figure "kill node3 -> gone from node1's DNS answer (from the container's death)" "$(secs_between "$(finished_at node3)" "$gone")" 4.5
state=$(state_of node3 node1)
[ "$state" = dead ] || fail "expected node1 to see node3 dead once DNS dropped it, saw $state"
log "PASS"
