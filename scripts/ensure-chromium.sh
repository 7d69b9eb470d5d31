#!/bin/bash
# Make sure a headless Chromium is installed: the HTML report's test renders the page with it
# (tests/unit/verify/test_report_html_browser.py) and `scripts/report_screenshots.py` takes the
# README's screenshots with it.
#
# Idempotent: a `chromium` (or $STACKGEN_CHROMIUM) that runs is reused. Otherwise Debian's
# `chromium` package is installed without its recommends (no desktop integration is needed
# for --headless). Needs root only when something has to be installed.
set -euo pipefail

say() { printf 'ensure-chromium: %s\n' "$*"; }
die() { printf 'ensure-chromium: ERROR: %s\n' "$*" >&2; exit 1; }

chromium_version() {  # prints the version if the binary runs
    local bin=${STACKGEN_CHROMIUM:-chromium}
    command -v "$bin" >/dev/null 2>&1 || return 1
    timeout 30 "$bin" --version 2>/dev/null | head -n1
}

if version=$(chromium_version) && [ -n "$version" ]; then
    say "reusing $version ($(command -v "${STACKGEN_CHROMIUM:-chromium}"))"
    exit 0
fi

[ "$(id -u)" = 0 ] || die "chromium is not installed, and installing it needs root (apt-get install chromium)"
say "apt-get update"
DEBIAN_FRONTEND=noninteractive apt-get update -qq
say "apt-get install --no-install-recommends chromium"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null \
    || die "apt-get install chromium failed"
version=$(chromium_version) || die "chromium still does not run after installing it"
say "installed $version"
