# Shared shell helpers for scripts/: environment, Postgres, tools. Sourced, never run.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Variables already set win; then .env (your local overrides); then .env.example (defaults).
load_env() {
  local file line key
  for file in "$ROOT/.env" "$ROOT/.env.example"; do
    [[ -f "$file" ]] || continue
    while IFS= read -r line || [[ -n "$line" ]]; do
      [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
      key="${line%%=*}"
      [[ -n "${!key+x}" ]] || export "$key=${line#*=}"
    done < "$file"
  done
}

# DATABASE_URL with its database name replaced.
database_url_for() {
  printf '%s/%s' "${DATABASE_URL%/*}" "$1"
}

# Start the local cluster if it is down (CI machines start it before us; this is the fallback).
ensure_postgres() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    log "Postgres is not accepting connections; starting the local cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && return 0; sleep 0.2; done
    die "Postgres did not start"
  fi
}

# Create the database named in DATABASE_URL if it does not exist.
ensure_database() {
  local name="${DATABASE_URL##*/}"
  name="${name%%\?*}"
  if [[ "$(psql -Atq "$(database_url_for postgres)" -c "SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]]; then
    psql -q "$(database_url_for postgres)" -c "CREATE DATABASE \"$name\""
  fi
}
