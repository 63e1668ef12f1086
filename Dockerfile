# syntax=docker/dockerfile:1
# AgentRelay: one image with agentrelay-hq (the default), agentrelay-runner and the agentrelay CLI.
#   docker compose up -d                     # HQ, see docker-compose.yml
#   docker build -t agentrelay .

# 1. The dashboard.
FROM node:20-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm install --no-audit --no-fund
COPY web/ ./
RUN npm run build

# 2. The binaries, with the dashboard embedded.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY crates/ crates/
COPY deploy/ deploy/
COPY --from=web /src/web/dist web/dist
RUN cargo build --release --locked -p agentrelay-hq -p agentrelay-runner -p agentrelay-cli

# 3. A slim runtime, as an unprivileged user.
FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl tini bash \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --create-home --home-dir /home/agentrelay --shell /bin/bash agentrelay \
 && mkdir -p /data \
 && chown agentrelay:agentrelay /data
COPY --from=build /src/target/release/agentrelay-hq /src/target/release/agentrelay-runner /src/target/release/agentrelay /usr/local/bin/
USER agentrelay
ENV AGENTRELAY_LISTEN=0.0.0.0:8080 \
    AGENTRELAY_DATA_DIR=/data \
    AGENTRELAY_LOG_FORMAT=json
EXPOSE 8080
VOLUME ["/data"]
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["tini", "--", "agentrelay-hq"]
