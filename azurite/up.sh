#!/usr/bin/env bash
# Starts the pinned Azurite on 127.0.0.1:10000-10002 and waits until the blob, queue and
# table services all answer. A no-op when they already answer. Installs Azurite with npm
# (from package-lock.json) on first use. Remembers the pid it started in azurite/.pid so
# that down.sh stops only that process.
set -euo pipefail
cd "$(dirname "$0")"

ports=(10000 10001 10002)

answers() { curl -s -o /dev/null --max-time 2 "http://127.0.0.1:$1/" ; }

all_answer() {
  local p
  for p in "${ports[@]}"; do answers "$p" || return 1; done
}

if all_answer; then
  echo "azurite: already up on 127.0.0.1:10000-10002"
  exit 0
fi
for p in "${ports[@]}"; do
  if answers "$p"; then
    echo "azurite: port $p answers but not all of 10000-10002 do; stop what holds it first" >&2
    exit 1
  fi
done

if [ ! -x node_modules/.bin/azurite ]; then
  echo "azurite: installing the pinned version with npm"
  npm ci --no-audit --no-fund --loglevel=error
fi

# launch.js is Azurite with its extent garbage collectors put off: see why there.
nohup node launch.js \
  --silent --skipApiVersionCheck --inMemoryPersistence --disableProductStyleUrl --disableTelemetry \
  --blobHost 127.0.0.1 --blobPort 10000 \
  --queueHost 127.0.0.1 --queuePort 10001 \
  --tableHost 127.0.0.1 --tablePort 10002 >azurite.log 2>&1 &
echo $! >.pid

for _ in $(seq 1 120); do
  if all_answer; then
    echo "azurite: up on 127.0.0.1:10000-10002 (pid $(cat .pid), log azurite/azurite.log)"
    exit 0
  fi
  if ! kill -0 "$(cat .pid)" 2>/dev/null; then
    echo "azurite: exited while starting; see azurite/azurite.log:" >&2
    tail -20 azurite.log >&2
    rm -f .pid
    exit 1
  fi
  sleep 0.5
done
echo "azurite: did not answer within 60s; see azurite/azurite.log" >&2
exit 1
