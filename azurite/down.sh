#!/usr/bin/env bash
# Stops the Azurite that up.sh started (by the pid it recorded), and nothing else.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -f .pid ]; then
  echo "azurite: not started by azurite/up.sh; nothing to stop"
  exit 0
fi
pid=$(cat .pid)
if kill -0 "$pid" 2>/dev/null; then
  kill "$pid"
  for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  echo "azurite: stopped (pid $pid)"
else
  echo "azurite: pid $pid was no longer running"
fi
rm -f .pid
