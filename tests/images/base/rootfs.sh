#!/bin/bash
# Build the stackgen-local/base rootfs with mmdebstrap and pipe it into `docker import`.
# Called by tests/images/build.py:  rootfs.sh TAG LABEL SUITE MIRROR-LINE...
# MIRROR-LINE: a one-line apt entry ("deb URI SUITE COMPONENTS"), derived from the host's apt config.
#
# The upstream images the twins stand in for are Alpine-based, where /bin/sh is BusyBox ash:
# so is it here (Debian's busybox package; dash stays installed as /usr/bin/dash), so that the
# rendered shell scripts (edge entrypoint, certbot run.sh, CMD-SHELL healthchecks) run under
# the shell they meet in production. Other commands (cp, mv, sleep, ...) stay Debian's coreutils;
# wget is made BusyBox's in the twins themselves (their Dockerfiles), not here: pebble's tests
# need GNU wget's --ca-certificate.
set -euo pipefail
tag=$1 label=$2 suite=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
docker=${DOCKER_CLI:-docker}
include=$(grep -v '^\s*#' "$here/packages.txt" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')

mmdebstrap \
  --variant=minbase \
  --include="$include" \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --aptopt='APT::Install-Recommends "false"' \
  --aptopt='Acquire::Languages "none"' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --customize-hook='chroot "$1" dpkg-divert --quiet --local --rename --divert /usr/bin/sh.dash --add /usr/bin/sh' \
  --customize-hook='ln -sf busybox "$1"/usr/bin/sh && chroot "$1" /bin/sh -c "busybox true" && test "$(readlink "$1"/usr/bin/sh)" = busybox' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log "$1"/var/log/bootstrap.log' \
  --customize-hook='printf "stackgen-base\n" > "$1"/etc/hostname' \
  "$suite" - "$@" \
| "$docker" import \
    --change "LABEL org.stackgen.recipe=$label" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/sh"]' \
    - "$tag"
