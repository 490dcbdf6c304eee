#!/usr/bin/env bash
# The browser tests (tests/browser/) drive the operating system's Chromium through Playwright
# (Playwright's own browser download is not used: nothing may be downloaded at test time).
# Run as root (as CI is) and without Chromium: install Debian's package. Otherwise say what the
# browser tests will do; they skip with the reason when no Chromium is found.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x "${COVIDCT_CHROMIUM:-/nonexistent}" ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "note: no Chromium and not root: the browser tests will be skipped" \
       "(sudo apt-get install -y chromium to run them)" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: no Chromium and no apt-get: the browser tests will be skipped" >&2
  exit 0
fi
echo "installing Chromium (Debian package) for the browser tests"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium >/dev/null 2>&1 || {
  apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null
}
chromium --version
