#!/usr/bin/env bash
# Installs what the observability tests (tests/observability.rs) need from
# Debian's packages:
#   prometheus -> /usr/bin/prometheus and /usr/bin/promtool
#   chromium   -> /usr/bin/chromium (headless, for the dashboard test)
# Idempotent; safe to call from .ci/run. Services shipped by the packages are
# not started (a policy-rc.d refuses it for the duration of the install), so
# no Prometheus daemon is left listening: the tests run their own, on
# 127.0.0.1, and stop it by PID.
set -euo pipefail

need=()
command -v promtool >/dev/null 2>&1 && command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -eq 0 ]; then
    echo "install-observability: prometheus, promtool and chromium already present"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Keep maintainer scripts from starting daemons.
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
echo "install-observability: installing ${need[*]}"
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" fonts-dejavu-core >/dev/null

# A package's init script may still have launched a daemon on some systems.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi

promtool --version 2>&1 | head -1
prometheus --version 2>&1 | head -1
chromium --version 2>&1 | head -1
