# One build, four small runtime images (targets): api, worker, migrate, demo-runner.
# docker build --target api -t evidence-api .   (compose.yaml builds each target)

FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN cargo install --locked sqlx-cli@0.9.0 --no-default-features --features postgres,rustls --root /tools
COPY Cargo.toml Cargo.lock ./
COPY api api
COPY jobs jobs
COPY tools tools
COPY sql sql
RUN cargo build --release --workspace --bins

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /app app
WORKDIR /app
USER app

FROM runtime AS api
COPY --from=build /src/target/release/api /usr/local/bin/api
EXPOSE 8080
HEALTHCHECK CMD curl -fsS http://127.0.0.1:8080/health || exit 1
CMD ["api"]

FROM runtime AS worker
COPY --from=build /src/target/release/worker /src/target/release/extract /usr/local/bin/
EXPOSE 9091
HEALTHCHECK CMD curl -fsS http://127.0.0.1:9091/health || exit 1
CMD ["worker"]

FROM runtime AS migrate
COPY --from=build /tools/bin/sqlx /usr/local/bin/sqlx
COPY sql /app/sql
CMD ["sqlx", "migrate", "run", "--source", "/app/sql"]

FROM runtime AS demo-runner
COPY --from=build /src/target/release/demo-client /usr/local/bin/demo-client
COPY --from=build /src/target/release/api /usr/local/bin/api
# A key of its own for the run (`api keys create` prints the key alone on its last line).
CMD ["/bin/sh", "-c", "EVIDENCE_API_KEY=$(api keys create --tenant demo --role admin --name compose-demo | tail -n 1) && export EVIDENCE_API_KEY && exec demo-client"]
