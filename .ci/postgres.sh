#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests of store/postgres: a cluster in a
# temporary directory, owned by the unprivileged postgres user, listening on
# 127.0.0.1 on a free port with its unix socket in that directory. It never
# touches the system cluster the Debian package may have started.
#
# How .ci/run calls it:
#
#   eval "$(bash .ci/postgres.sh start)"
#   trap 'bash .ci/postgres.sh stop' EXIT
#
# start prints two export lines on stdout (everything else goes to stderr):
#
#   export KEYBRAKE_TEST_DATABASE_URL='postgres://keybrake:PASSWORD@127.0.0.1:PORT/keybrake?sslmode=disable'
#   export KEYBRAKE_TEST_PGDIR='/tmp/keybrake-pg.XXXXXX'
#   export KEYBRAKE_TEST_AGENT_DATABASE_URL='postgres://keybrake_agent:PASSWORD2@127.0.0.1:PORT/keybrake?sslmode=disable'
#
# and stop stops the cluster in $KEYBRAKE_TEST_PGDIR (or the directory given
# as its second argument) with pg_ctl stop -m fast and removes the directory.
# The role keybrake owns the database keybrake and is no superuser; the tests
# create one schema per test in it. The role keybrake_agent owns nothing and
# may do nothing but connect: a test grants it, on one schema, exactly the
# privileges docs/fleets.md lists for agents, and runs a store as it. start installs Debian's postgresql
# package (15) when its binaries are missing, which needs root and apt.
set -euo pipefail

PGBIN=${KEYBRAKE_PGBIN:-/usr/lib/postgresql/15/bin}

log() { printf '%s\n' "postgres.sh: $*" >&2; }

as_postgres() { runuser -u postgres -- "$@"; }

install_missing() {
  if [ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_ctl" ]; then
    return
  fi
  log "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends postgresql >&2
}

free_port() {
  # Bind port 0 and report what the kernel chose. A race with another
  # process taking it before postgres does is possible but unlikely; pg_ctl
  # then fails to start and so does this script.
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()' 2>/dev/null && return
  local p
  for p in $(shuf -i 20000-60000 -n 50); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"; return
    fi
  done
  log "no free port found"; exit 1
}

start() {
  install_missing
  local dir port password agentpw
  dir=$(mktemp -d /tmp/keybrake-pg.XXXXXX)
  chmod 0755 "$dir"
  mkdir "$dir/data"
  chown -R postgres:postgres "$dir"
  chmod 0700 "$dir/data"
  port=$(free_port)
  password=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  agentpw=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  log "initdb in $dir/data"
  as_postgres "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
    { cat "$dir/initdb.log" >&2; exit 1; }
  # Local (socket) connections are trusted for the postgres superuser
  # that sets up; TCP needs the password (scram-sha-256), as in production.
  cat >"$dir/data/pg_hba.conf" <<HBA
local all postgres trust
host  all all 127.0.0.1/32 scram-sha-256
HBA
  log "starting on 127.0.0.1:$port"
  as_postgres "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=300 -c fsync=on" \
    start >&2 || { cat "$dir/server.log" >&2; exit 1; }
  as_postgres "$PGBIN/psql" -h "$dir" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q >&2 <<SQL
SET password_encryption = 'scram-sha-256';
CREATE ROLE keybrake LOGIN PASSWORD '$password';
-- A database collation that is not bytewise, as most production
-- databases have (en_US.UTF-8 and the like): a query that relies on
-- bytewise order of text fails here rather than in someone's fleet.
CREATE DATABASE keybrake OWNER keybrake TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8';
CREATE ROLE keybrake_agent LOGIN PASSWORD '$agentpw';
SQL
  printf "export KEYBRAKE_TEST_DATABASE_URL='postgres://keybrake:%s@127.0.0.1:%s/keybrake?sslmode=disable'\n" "$password" "$port"
  printf "export KEYBRAKE_TEST_PGDIR='%s'\n" "$dir"
  printf "export KEYBRAKE_TEST_AGENT_DATABASE_URL='postgres://keybrake_agent:%s@127.0.0.1:%s/keybrake?sslmode=disable'\n" "$agentpw" "$port"
}

stop() {
  local dir=${1:-${KEYBRAKE_TEST_PGDIR:-}}
  if [ -z "$dir" ]; then
    log "stop: no directory (set KEYBRAKE_TEST_PGDIR or pass it)"; exit 1
  fi
  case "$dir" in
    /tmp/keybrake-pg.*) ;;
    *) log "stop: $dir is not a directory this script made"; exit 1 ;;
  esac
  if [ -f "$dir/data/postmaster.pid" ]; then
    as_postgres "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  *) echo "usage: $0 start | stop [DIR]" >&2; exit 2 ;;
esac
