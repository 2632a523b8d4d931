#!/usr/bin/env bash
# Starts a throwaway PostgreSQL (the machine's own binaries, 15 or later) on 127.0.0.1:$PORT
# for the tests, and waits until it accepts connections. A no-op when it already does.
# The cluster lives under /tmp (every user can reach it, the postgres user included: initdb
# refuses to run as root, so as root this runs the server as postgres). Trust auth, loopback
# only: for tests, never for anything else.
set -euo pipefail
cd "$(dirname "$0")"
PORT=${PLATFORM_TEST_POSTGRES_PORT:-54329}
DATA=${PLATFORM_TEST_POSTGRES_DATA:-/tmp/platform-postgres-$PORT}

bindir=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && bindir=$d; done
if [ -z "$bindir" ]; then
  pg_ctl_path=$(command -v pg_ctl || true)
  [ -n "$pg_ctl_path" ] && bindir=$(dirname "$(readlink -f "$pg_ctl_path")")
fi
if [ -z "$bindir" ]; then
  echo "postgres: no PostgreSQL server binaries found (apt-get install postgresql)" >&2
  exit 1
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if "$bindir/pg_isready" -q -h 127.0.0.1 -p "$PORT" 2>/dev/null; then
  echo "postgres: already up on 127.0.0.1:$PORT"
  exit 0
fi

if [ ! -f "$DATA/PG_VERSION" ]; then
  mkdir -p "$DATA"
  [ "$(id -u)" = 0 ] && chown postgres: "$DATA"
  chmod 700 "$DATA"
  as_owner "$bindir/initdb" -D "$DATA" -U postgres --auth=trust --no-sync -E UTF8 >"$DATA.initdb.log" 2>&1 ||
    { echo "postgres: initdb failed; see $DATA.initdb.log" >&2; exit 1; }
fi
as_owner "$bindir/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
  -o "-h 127.0.0.1 -p $PORT -k $DATA -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" start >/dev/null ||
  { echo "postgres: did not start; see $DATA/server.log" >&2; tail -20 "$DATA/server.log" >&2; exit 1; }
echo "$DATA" >.data
echo "postgres: up on 127.0.0.1:$PORT (data $DATA)"
