#!/usr/bin/env bash
# Make sure a headless Chromium is available for the report test (tests/test_report.py).
# On Debian machines of this kind it comes from the distribution's package; installing needs
# root (as in CI). Fails loudly rather than letting the test skip.
set -euo pipefail
for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then
        exit 0
    fi
done
if [ "$(id -u)" -ne 0 ]; then
    echo "Chromium is missing and installing it needs root: apt-get install -y chromium" >&2
    exit 1
fi
echo "installing Chromium for the report test (apt-get install chromium)" >&2
apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null 2>&1
    apt-get install -y --no-install-recommends chromium >/dev/null
}
