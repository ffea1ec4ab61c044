#!/usr/bin/env bash
# One command builds the binary and the image:
#
#     bash docker/build.sh            # from the repository root (or anywhere)
#
# 1. builds a statically linked gossip (static-pie, glibc) with
#    RUSTFLAGS='-C target-feature=+crt-static' cargo build --release
#        --target x86_64-unknown-linux-gnu
#    (the explicit --target keeps the static flag away from proc-macro crates),
# 2. copies it, stripped, to "docker/gossip (built by: bash docker/build.sh)",
#    the only file in the image's build context (see .dockerignore; the name
#    is what a plain `docker-compose build` on a fresh clone prints when the
#    file is missing),
# 3. runs `docker-compose build` with GOSSIP_COMMIT (the checkout's commit),
#    which the image records in the label org.opencontainers.image.revision
#    and the binary in `gossip --version` (extra arguments go to
#    docker-compose build).
#
# Set SKIP_IMAGE=1 to stop after step 2.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/target}"
triple=x86_64-unknown-linux-gnu
# The name holds a slash, so it is the file "build.sh)" in the folder
# "gossip (built by: bash docker": odd on disk, but a build without it fails
# with "stat docker/gossip (built by: bash docker/build.sh): file does not exist".
out="docker/gossip (built by: bash docker/build.sh)"
mkdir -p "$(dirname "$out")"
GOSSIP_COMMIT="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
export GOSSIP_COMMIT

echo "==> cargo build --release --target $triple (static)"
RUSTFLAGS='-C target-feature=+crt-static' \
    cargo build --release --target "$triple" --bin gossip

bin="$CARGO_TARGET_DIR/$triple/release/gossip"
if command -v file >/dev/null 2>&1; then
    if ! file -L "$bin" | grep -q 'static'; then
        echo "error: $bin is not statically linked: $(file -L "$bin")" >&2
        exit 1
    fi
fi
# the image only needs the code: drop the symbol tables (about 2 MB)
if command -v strip >/dev/null 2>&1; then
    strip -o docker/gossip.tmp "$bin"
else
    cp "$bin" docker/gossip.tmp
fi
chmod 0755 docker/gossip.tmp
mv -f docker/gossip.tmp "$out"
rm -f docker/gossip   # the name before the image recorded its commit
size=$(stat -c %s "$out")
echo "==> $out: $((size / 1024)) KiB, commit $GOSSIP_COMMIT"
if [ "$size" -gt $((12 * 1000 * 1000)) ]; then
    echo "error: $out is over 12 MB, the image limit" >&2
    exit 1
fi

if [ "${SKIP_IMAGE:-0}" = 1 ]; then
    exit 0
fi
echo "==> docker-compose build (GOSSIP_COMMIT=$GOSSIP_COMMIT)"
docker-compose build "$@"
docker image ls "${GOSSIP_IMAGE:-gossip:latest}"
