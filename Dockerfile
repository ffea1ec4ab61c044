# Gossip agent image: a statically linked binary in an empty (scratch) image.
#
# Needs no base image and no network. Build the binary and the image in one go:
#
#     bash docker/build.sh
#
# which runs `RUSTFLAGS='-C target-feature=+crt-static' cargo build --release
# --target x86_64-unknown-linux-gnu`, copies the result into docker/ under the
# name COPY uses below, and runs `docker-compose build` with GOSSIP_COMMIT set.
#
# On a fresh clone a plain `docker-compose build` fails on purpose: the file's
# name is the instruction, so the error reads "stat docker/gossip (built by:
# bash docker/build.sh): file does not exist". There is no base image to
# compile in, so the binary must come from the host. (The name holds a slash:
# on disk it is the file "build.sh)" in the folder "gossip (built by: bash docker".)
#
# The image records the commit it was built from in the OCI label
# org.opencontainers.image.revision; test/lib.sh (the Docker tests, demo.sh)
# refuses an image whose label is not the checkout's commit.
#
# No "# syntax=" line on purpose: it would make the builder pull a frontend image.
FROM scratch

# First, so that a build without the binary fails before it makes any layer.
COPY ["docker/gossip (built by: bash docker/build.sh)", "/gossip"]

ARG GOSSIP_COMMIT=unknown
LABEL org.opencontainers.image.revision=$GOSSIP_COMMIT \
      org.opencontainers.image.title=gossip

# So that `docker-compose exec nodeN gossip members` finds the binary by name.
ENV PATH=/

# nobody:nogroup, numerically (a scratch image has no /etc/passwd)
USER 65534:65534

# The agent listens on UDP NODE_PORT (default 7946) and serves its HTTP API on
# 127.0.0.1:(NODE_PORT+1000) inside the container.
EXPOSE 7946/udp

# Exec form: there is no shell in the image. `gossip members` reads NODE_PORT
# (or API_ADDR) from the container's environment and exits non-zero when the
# local API does not answer.
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/gossip", "members", "--json"]

# SIGTERM (docker stop / docker-compose stop) makes the agent leave gracefully.
STOPSIGNAL SIGTERM

ENTRYPOINT ["/gossip"]
CMD ["agent"]
