#!/usr/bin/env bash
# Makes sure the browser tests (internal/testenv/browser.go) find a headless Chromium, looking
# where they look: $PLATFORM_CHROMIUM, else chromium, chromium-browser or google-chrome on PATH.
# A no-op when one is there. Else, as root on Debian/Ubuntu (CI), installs the Debian package
# chromium with apt-get; anywhere else it fails, saying what to install. The browser tests fail
# without a browser: they are never skipped.
set -euo pipefail

if [ -n "${PLATFORM_CHROMIUM:-}" ]; then
  if bin=$(command -v "$PLATFORM_CHROMIUM"); then
    echo "chromium: $bin (PLATFORM_CHROMIUM)"
    exit 0
  fi
  echo "chromium: PLATFORM_CHROMIUM=$PLATFORM_CHROMIUM is not an executable" >&2
  exit 1
fi

find_browser() {
  for name in chromium chromium-browser google-chrome; do
    command -v "$name" && return 0
  done
  return 1
}

if bin=$(find_browser); then
  echo "chromium: $bin"
  exit 0
fi

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium: no Chromium for the browser tests; install it (apt-get install chromium), or set PLATFORM_CHROMIUM to a Chromium or Chrome binary" >&2
  exit 1
fi
echo "chromium: installing the Debian package chromium with apt-get (the browser tests need it)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq chromium >/dev/null
bin=$(find_browser) || { echo "chromium: the package chromium was installed, yet no chromium is on PATH" >&2; exit 1; }
echo "chromium: $bin"
