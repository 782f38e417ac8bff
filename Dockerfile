# One build, four small runtime images (targets): api, worker, migrate, demo-runner.
# docker build --target api -t evidence-api .   (compose.yaml builds each target)

FROM rust:1.95-bookworm AS build
WORKDIR /src
RUN cargo install --locked sqlx-cli@0.9.0 --no-default-features --features postgres,rustls --root /tools

# Dependencies first, from the manifests alone: this layer is rebuilt only when a Cargo.toml or
# Cargo.lock changes. Each member gets an empty lib.rs and main.rs, so `--workspace --bins`
# resolves the same packages and features as the real build below and compiles every dependency.
# The members' own stub artifacts and the stubs are then removed, so the real build cannot take a
# stub for up to date (cargo compares modification times, and COPY keeps the sources' own).
COPY Cargo.toml Cargo.lock ./
COPY api/Cargo.toml api/
COPY jobs/queue/Cargo.toml jobs/queue/
COPY jobs/evidence/Cargo.toml jobs/evidence/
COPY tools/Cargo.toml tools/
RUN for member in api jobs/queue jobs/evidence tools; do \
      mkdir -p "$member/src" && : > "$member/src/lib.rs" && echo 'fn main() {}' > "$member/src/main.rs"; \
    done \
 && cargo build --release --locked --workspace --bins \
 && cargo clean --release -p api -p queue -p evidence -p tools \
 && rm -r api/src jobs/queue/src jobs/evidence/src tools/src

# The real sources. sql/ is needed at compile time: sqlx::migrate! embeds ../../sql (evidence) and
# jobs/queue/migrations, whose files are symlinks into sql/.
COPY api api
COPY jobs jobs
COPY tools tools
COPY sql sql
RUN cargo build --release --locked --workspace --bins

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
HEALTHCHECK --interval=5s --timeout=3s CMD curl -fsS http://127.0.0.1:8080/health || exit 1
CMD ["api"]

FROM runtime AS worker
# What extraction runs: poppler's pdftotext, pdfinfo and pdftoppm, Tesseract with its English
# data. tini is the container's first process: the programs a killed extraction leaves are
# reparented to it and reaped (the worker as PID 1 would leave them as zombies).
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends poppler-utils tesseract-ocr tesseract-ocr-eng tini \
 && rm -rf /var/lib/apt/lists/*
USER app
ENTRYPOINT ["/usr/bin/tini", "--"]
COPY --from=build /src/target/release/worker /src/target/release/extract /usr/local/bin/
EXPOSE 9091
HEALTHCHECK --interval=5s --timeout=3s CMD curl -fsS http://127.0.0.1:9091/health || exit 1
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
