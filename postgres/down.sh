#!/usr/bin/env bash
# Stops the PostgreSQL that up.sh started, and removes its throwaway cluster.
set -euo pipefail
cd "$(dirname "$0")"
[ -f .data ] || { echo "postgres: not started by postgres/up.sh; nothing to stop"; exit 0; }
DATA=$(cat .data)
bindir=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/pg_ctl" ] && bindir=$d; done
[ -z "$bindir" ] && bindir=$(dirname "$(readlink -f "$(command -v pg_ctl)")")
if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bindir/pg_ctl" -D "$DATA" -m fast stop >/dev/null || true
else "$bindir/pg_ctl" -D "$DATA" -m fast stop >/dev/null || true; fi
rm -rf "$DATA" "$DATA.initdb.log" .data
echo "postgres: stopped"
