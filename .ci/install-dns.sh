#!/usr/bin/env bash
# Installs what the DNS tests (tests/dns.rs) need from Debian's packages:
#   bind9-dnsutils -> /usr/bin/dig
#   haproxy        -> /usr/sbin/haproxy (run by the test on 127.0.0.1)
# bench/dns.sh also uses dnsperf and nsd; pass --bench to install them too.
# Idempotent; safe to call from .ci/run. Daemons shipped by the packages are
# not started (a policy-rc.d refuses it for the duration of the install).
set -euo pipefail

need=()
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
if [ "${1:-}" = "--bench" ]; then
    command -v dnsperf >/dev/null 2>&1 || need+=(dnsperf)
    command -v nsd >/dev/null 2>&1 || need+=(nsd)
fi
if [ ${#need[@]} -eq 0 ]; then
    echo "install-dns: dig and haproxy already present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

POLICY=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
    $SUDO chmod +x "$POLICY"
    made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
echo "install-dns: installing ${need[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
