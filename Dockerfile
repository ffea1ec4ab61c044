# Gossip agent image: a statically linked binary in an empty (scratch) image.
#
# Needs no base image and no network. Build the binary and the image in one go:
#
#     bash docker/build.sh
#
# which runs `RUSTFLAGS='-C target-feature=+crt-static' cargo build --release
# --target x86_64-unknown-linux-gnu`, copies the result to docker/gossip and
# then `docker-compose build`. Once docker/gossip exists, `docker-compose build`
# (or `docker build -t gossip:latest .`) alone is enough.
#
# No "# syntax=" line on purpose: it would make the builder pull a frontend image.
FROM scratch

COPY docker/gossip /gossip

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
