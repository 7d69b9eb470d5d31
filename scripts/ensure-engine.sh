#!/bin/bash
# Make sure a Docker engine answers, and that the image builder's tools are installed
# (tests/images/build.py needs mmdebstrap; zstd packs/unpacks saved images).
#
# Idempotent: an engine that already answers (local socket, or DOCKER_HOST) is reused.
# Otherwise Debian's docker.io is installed if needed and dockerd is started in the background
# (detached from the calling shell), logging to /var/log/stackgen-dockerd.log.
# Needs root when something has to be installed or started.
set -euo pipefail

LOG=/var/log/stackgen-dockerd.log
SOCK=/var/run/docker.sock
WAIT_SECONDS=${STACKGEN_ENGINE_WAIT:-60}

say() { printf 'ensure-engine: %s\n' "$*"; }
die() { printf 'ensure-engine: ERROR: %s\n' "$*" >&2; exit 1; }

apt_updated=0
apt_install() {
    [ "$(id -u)" = 0 ] || die "need root to install: $*"
    if [ "$apt_updated" = 0 ]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# Debian's 20.10 CLI builds without buildx; a newer CLI in /usr/local/bin may want buildx.
docker_cli() {
    if [ -x /usr/bin/docker ]; then echo /usr/bin/docker; else command -v docker || true; fi
}

engine_version() {  # prints the server version if an engine answers ($@: extra CLI args)
    local cli
    cli=$(docker_cli)
    [ -n "$cli" ] || return 1
    timeout 10 "$cli" "$@" version --format '{{.Server.Version}}' 2>/dev/null
}

# --- tools of the image builder ------------------------------------------------------------
missing=()
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

# --- an engine that already answers -------------------------------------------------------
if version=$(engine_version) && [ -n "$version" ]; then
    say "reusing the Docker engine at ${DOCKER_HOST:-unix://$SOCK} (server $version)"
    exit 0
fi
if [ -n "${DOCKER_HOST:-}" ] && [ "$DOCKER_HOST" != "unix://$SOCK" ]; then
    say "warning: DOCKER_HOST=$DOCKER_HOST does not answer; starting a local engine on $SOCK instead (unset DOCKER_HOST to use it)"
fi
LOCAL=(-H "unix://$SOCK")

# --- start a local dockerd ----------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "no Docker engine answers, and starting one needs root"
if ! command -v dockerd >/dev/null 2>&1 || [ ! -x /usr/bin/docker ]; then
    apt_install docker.io
fi
command -v dockerd >/dev/null 2>&1 || die "dockerd still missing after installing docker.io"

if pgrep -x dockerd >/dev/null 2>&1; then
    say "dockerd is already running (pid $(pgrep -x dockerd | tr '\n' ' ')); waiting for it"
else
    # A pid file left by a dead dockerd makes the next one refuse to start.
    if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid 2>/dev/null)" 2>/dev/null; then
        rm -f /var/run/docker.pid
    fi
    say "starting dockerd (log: $LOG)"
    mkdir -p "$(dirname "$LOG")"
    printf '\n=== %s ensure-engine.sh starts dockerd ===\n' "$(date -Is)" >>"$LOG"
    setsid nohup dockerd >>"$LOG" 2>&1 </dev/null &
    disown 2>/dev/null || true
fi

for ((i = 0; i < WAIT_SECONDS; i++)); do
    if [ -S "$SOCK" ] && version=$(engine_version "${LOCAL[@]}") && [ -n "$version" ]; then
        say "Docker engine up on unix://$SOCK after ${i}s: server $version"
        exit 0
    fi
    if ! pgrep -x dockerd >/dev/null 2>&1; then
        sleep 1
        pgrep -x dockerd >/dev/null 2>&1 || {
            printf 'ensure-engine: ERROR: dockerd exited; last lines of %s:\n' "$LOG" >&2
            tail -n 25 "$LOG" >&2 || true
            exit 1
        }
    fi
    sleep 1
done

printf 'ensure-engine: ERROR: no Docker engine answered on %s within %ss; last lines of %s:\n' \
    "$SOCK" "$WAIT_SECONDS" "$LOG" >&2
tail -n 25 "$LOG" >&2 || true
exit 1
