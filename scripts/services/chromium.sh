#!/usr/bin/env bash
# Install Debian's Chromium for the browser test of the HTML report
# (tests/test_report_browser.py). Idempotent and quiet; where apt is not available
# the test skips itself, so this script only says so and succeeds.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "chromium.sh: apt-get not available; the browser test of the report will be skipped" >&2
    exit 0
fi

sudo_prefix=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo_prefix=(sudo -n)
    else
        echo "chromium.sh: not root and no sudo; the browser test of the report will be skipped" >&2
        exit 0
    fi
fi

export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! "${sudo_prefix[@]}" apt-get update -qq >"$log" 2>&1 \
    || ! "${sudo_prefix[@]}" apt-get install -y -qq --no-install-recommends chromium >>"$log" 2>&1; then
    tail -n 5 "$log" >&2
    echo "chromium.sh: could not install chromium; the browser test of the report will be skipped" >&2
fi
exit 0
