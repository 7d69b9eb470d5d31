#!/bin/bash
# Build the stackgen-local/base rootfs with mmdebstrap and pipe it into `docker import`.
# Called by tests/images/build.py:  rootfs.sh TAG LABEL SUITE MIRROR-LINE...
# MIRROR-LINE: a one-line apt entry ("deb URI SUITE COMPONENTS"), taken from the host's apt config.
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
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/cache/debconf/*-old "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log "$1"/var/log/bootstrap.log' \
  --customize-hook='printf "stackgen-base\n" > "$1"/etc/hostname' \
  "$suite" - "$@" \
| "$docker" import \
    --change "LABEL org.stackgen.recipe=$label" \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["/bin/bash"]' \
    - "$tag"
