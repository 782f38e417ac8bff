# Shared shell helpers for scripts/: environment, Postgres, tools. Sourced, never run.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

log() { printf '[%s] %s\n' "$(basename "$0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Variables already set win; then .env (your local overrides); then .env.example (defaults).
# Lines are NAME=value; one pair of double or single quotes around a value is removed, and
# nothing else in it is interpreted (no `#` comments after a value, escapes or ${…}).
load_env() {
  local file line key value
  for file in "$ROOT/.env" "$ROOT/.env.example"; do
    [[ -f "$file" ]] || continue
    while IFS= read -r line || [[ -n "$line" ]]; do
      [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
      key="${line%%=*}"
      value="${line#*=}"
      if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then value="${BASH_REMATCH[1]}"; fi
      [[ -n "${!key+x}" ]] || export "$key=$value"
    done < "$file"
  done
}

# DATABASE_URL with its database name replaced.
database_url_for() {
  printf '%s/%s' "${DATABASE_URL%/*}" "$1"
}

# The server DATABASE_URL names must answer. A local one that is down is started (CI machines
# start it before us; this is the fallback): the Debian cluster that listens on the URL's port.
# A server on another host is only waited for, 10 s at most. A URL without a host (a socket in
# its query) is left to libpq's defaults.
ensure_postgres() {
  local rest host port cluster where=()
  rest="${DATABASE_URL#*://}"
  rest="${rest#*@}"
  rest="${rest%%/*}"
  port=5432
  if [[ "$rest" == \[* ]]; then # [::1]:5432
    host="${rest#[}"
    host="${host%%]*}"
    [[ "$rest" == *]:* ]] && port="${rest##*]:}"
  else
    host="${rest%:*}"
    [[ "$rest" == *:* ]] && port="${rest##*:}"
  fi
  [[ -z "$host" ]] || where=(-h "$host" -p "$port")
  pg_isready -q "${where[@]}" 2>/dev/null && return 0
  if [[ "$host" == 127.0.0.1 || "$host" == localhost || "$host" == ::1 ]] && command -v pg_lsclusters >/dev/null; then
    cluster=$(pg_lsclusters -h | awk -v port="$port" '$3 == port { print $1, $2; exit }')
    [[ -n "$cluster" ]] || die "no local Postgres cluster listens on port $port (pg_lsclusters)"
    log "Postgres is not accepting connections on port $port; starting cluster $cluster"
    # shellcheck disable=SC2086 # "version name"
    pg_ctlcluster --skip-systemctl-redirect $cluster start
  fi
  for _ in $(seq 50); do pg_isready -q "${where[@]}" && return 0; sleep 0.2; done
  die "Postgres at ${host:-the default socket}:$port does not accept connections"
}

# A Postgres cluster of our own on 127.0.0.1:<port>, made with Debian's pg_createcluster from the
# newest installed version (settings as -o name=value), trusted for local TCP and started; for a
# script that must stop Postgres or change its settings, never the shared server's. Sets
# PRIVATE_PG (version and name, for pg_ctlcluster) and prints nothing; drop it with
# drop_private_cluster.
private_cluster() { # name port [-o name=value]...
  local name=$1 port=$2 version
  shift 2
  command -v pg_createcluster >/dev/null || die "pg_createcluster is missing (Debian's postgresql-common)"
  version=$(ls /etc/postgresql | sort -n | tail -1)
  PRIVATE_PG="$version $name"
  drop_private_cluster
  pg_createcluster -q "$version" "$name" -p "$port" "$@" >/dev/null
  # Trust for local TCP connections: the cluster lives for this run only, on 127.0.0.1.
  sed -i 's/^\(host.*127\.0\.0\.1\/32 *\)[a-z0-9-]*$/\1trust/' "/etc/postgresql/$version/$name/pg_hba.conf"
  private_cluster_ctl start
}

private_cluster_ctl() { # start|stop
  # shellcheck disable=SC2086 # PRIVATE_PG is "version name"
  if [[ "$1" == stop ]]; then pg_ctlcluster --skip-systemctl-redirect $PRIVATE_PG stop -m fast; return; fi
  # shellcheck disable=SC2086
  pg_ctlcluster --skip-systemctl-redirect $PRIVATE_PG start
  local port
  # shellcheck disable=SC2086
  port=$(pg_conftool $PRIVATE_PG show port | sed 's/.*= *//')
  for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p "$port" && return 0; sleep 0.2; done
  die "the private cluster $PRIVATE_PG did not start"
}

# Trust connections from another network (a test's network namespace) too; reloads the cluster.
private_cluster_trust() { # cidr
  local version=${PRIVATE_PG% *} name=${PRIVATE_PG#* }
  echo "host all all $1 trust" >>"/etc/postgresql/$version/$name/pg_hba.conf"
  # shellcheck disable=SC2086
  pg_ctlcluster --skip-systemctl-redirect $PRIVATE_PG reload
}

drop_private_cluster() {
  # shellcheck disable=SC2086
  [[ -z "${PRIVATE_PG:-}" ]] || pg_dropcluster --stop $PRIVATE_PG 2>/dev/null || true
}

# Create the database named in DATABASE_URL if it does not exist.
ensure_database() {
  local name="${DATABASE_URL##*/}"
  name="${name%%\?*}"
  if [[ "$(psql -Atq "$(database_url_for postgres)" -c "SELECT 1 FROM pg_database WHERE datname = '$name'")" != 1 ]]; then
    psql -q "$(database_url_for postgres)" -c "CREATE DATABASE \"$name\""
  fi
}

RUN_DIR="$ROOT/.run"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

# host and port of an http://host:port URL
url_host() { local u="${1#*://}"; u="${u%%/*}"; printf '%s' "${u%%:*}"; }
url_port() { local u="${1#*://}"; u="${u%%/*}"; [[ "$u" == *:* ]] && printf '%s' "${u##*:}" || printf 80; }

wait_for_port() { # host port what
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
    sleep 0.1
  done
  die "$3 did not start listening on $1:$2"
}

# Start s3s-fs at S3_ENDPOINT unless something already answers there (MinIO, another run's
# server). Data lives in .run/s3 (a bucket is a folder), or, given a folder (a name under .run,
# or an absolute path), in that folder emptied first: a scratch store for a benchmark, whose
# runs would otherwise each add to the files of all runs before (s3s-fs keeps two metadata files
# per object, all in its top folder). Sets S3_STARTED_PID when it started one.
start_s3() { # [scratch folder]
  local host port data="${1:-s3}"
  [[ $data == /* ]] || data="$RUN_DIR/$data"
  host=$(url_host "$S3_ENDPOINT"); port=$(url_port "$S3_ENDPOINT")
  S3_STARTED_PID=
  if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then
    log "using the S3 server already listening at $S3_ENDPOINT"
    return 0
  fi
  command -v s3s-fs >/dev/null || die "s3s-fs is not installed: run scripts/install-tools"
  [[ -z "${1:-}" ]] || { [[ $data == */?* && $data != "$ROOT" ]] || die "refusing to empty $data"; rm -rf "$data"; }
  mkdir -p "$data"
  s3s-fs --host "$host" --port "$port" --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" \
    "$data" >"$RUN_DIR/s3.log" 2>&1 &
  S3_STARTED_PID=$!
  wait_for_port "$host" "$port" "s3s-fs"
  log "started s3s-fs at $S3_ENDPOINT (pid $S3_STARTED_PID, data in ${data#"$ROOT"/}, log in .run/s3.log)"
}

stop_pid() { # pid
  [[ -n "${1:-}" ]] || return 0
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
}

# A new API key (`api keys create`, as the database owner), printed alone: the last line of its
# output. Needs the migrations applied and the api binary built (debug unless $1 says release).
new_api_key() { # profile tenant role name
  "$TARGET_DIR/$1/api" keys create --tenant "$2" --role "$3" --name "$4" | tail -n 1
}

# The public prefix of an API key (evk_<prefix>_<secret>), as listings and logs name it.
api_key_prefix() { local rest="${1#evk_}"; printf '%s' "${rest%%_*}"; }

# Revoke a key made by new_api_key (for a script's cleanup: failures are ignored).
revoke_api_key() { # profile key
  [[ -n "${2:-}" ]] || return 0
  "$TARGET_DIR/$1/api" keys revoke "$(api_key_prefix "$2")" >/dev/null 2>&1 || true
}

# Wait until the api and the worker (pids $API_PID, $WORKER_PID) answer /ready; die with the tail
# of a log (when given) if one exits or 10 s pass.
wait_ready() { # [api_log worker_log]
  for _ in $(seq 100); do
    if curl -fsS "http://$API_BIND/ready" >/dev/null 2>&1 && curl -fsS "http://$WORKER_BIND/ready" >/dev/null 2>&1; then
      return 0
    fi
    kill -0 "$API_PID" 2>/dev/null || { [[ -z "${1:-}" ]] || tail -20 "$1" >&2; die "the API exited"; }
    kill -0 "$WORKER_PID" 2>/dev/null || { [[ -z "${2:-}" ]] || tail -20 "$2" >&2; die "the worker exited"; }
    sleep 0.1
  done
  die "the API or the worker is not ready after 10 s${1:+ (see $1, $2)}"
}

# Start the api and the worker of a build profile (debug or release) in the background, logs in
# .run/[<name>-]api.log and .run/[<name>-]worker.log, and wait until both answer /ready. Sets
# API_PID and WORKER_PID (stop them with stop_pid).
start_services() { # profile [name]
  local api_log="$RUN_DIR/${2:+$2-}api.log" worker_log="$RUN_DIR/${2:+$2-}worker.log"
  mkdir -p "$RUN_DIR"
  "$TARGET_DIR/$1/api" >"$api_log" 2>&1 & API_PID=$!
  "$TARGET_DIR/$1/worker" >"$worker_log" 2>&1 & WORKER_PID=$!
  wait_ready "$api_log" "$worker_log"
}
