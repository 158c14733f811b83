# tollgate: multi-stage build, small non-root runtime image.
#   docker build -t tollgate .
#   docker run -p 6379:6379 -v tollgate-data:/data tollgate

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin tollgate \
 && strip target/release/tollgate

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin tollgate \
 && mkdir -p /data /etc/tollgate \
 && chown tollgate:tollgate /data
COPY --from=build /src/target/release/tollgate /usr/local/bin/tollgate
COPY config/tollgate.toml /etc/tollgate/tollgate.toml
USER tollgate
VOLUME ["/data"]
EXPOSE 6379
# Inside the container tollgate listens on all interfaces and keeps its
# snapshot in the /data volume. The server and the healthcheck both read
# their settings from these variables and the config file they name, so the
# healthcheck probes the port and password the server really uses: change
# settings by mounting a config file at /etc/tollgate/tollgate.toml or with
# TOLLGATE_* variables (TOLLGATE_PORT, TOLLGATE_REQUIREPASS, ...), not with
# flags after the image name, which the healthcheck does not see.
# Protected mode is on: with no password, only clients inside the container
# (loopback) are served and any other is told how to set one. Give clients
# a password: -e TOLLGATE_REQUIREPASS=... (then redis-cli -a ...).
ENV TOLLGATE_BIND=0.0.0.0 \
    TOLLGATE_DATA_DIR=/data \
    TOLLGATE_CONFIG=/etc/tollgate/tollgate.toml
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["tollgate", "--healthcheck"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["tollgate"]
