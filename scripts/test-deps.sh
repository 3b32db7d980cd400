#!/usr/bin/env bash
# System packages the test suite needs beyond Python (headless Chromium for the report tests).
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "note: chromium not found; browser tests will fail. Install Debian's 'chromium' package." >&2
  fi
fi
