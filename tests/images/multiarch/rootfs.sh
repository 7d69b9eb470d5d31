#!/bin/bash
# Make a minimal foreign-architecture Debian rootfs tarball (Node.js only) with mmdebstrap.
# Called by tests/images/multiarch/build.py:  rootfs.sh DEBIAN_ARCH OUTPUT.tar SUITE MIRROR-LINE...
# The maintainer scripts of DEBIAN_ARCH's packages run under QEMU user emulation (binfmt_misc,
# scripts/ensure-emulation.sh). The result is a plain tar for `ADD rootfs.tar /` in a
# `FROM scratch` Dockerfile: `docker import --platform` would record the host's platform instead.
set -euo pipefail
arch=$1 output=$2 suite=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
include=$(grep -v '^\s*#' "$here/packages.txt" | tr -s ' \n' ',' | sed 's/^,//; s/,$//')

mmdebstrap \
  --arch="$arch" \
  --variant=essential \
  --include="$include" \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --aptopt='APT::Install-Recommends "false"' \
  --aptopt='Acquire::Languages "none"' \
  --dpkgopt='path-exclude=/usr/share/man/*' \
  --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/share/locale/*' \
  --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/apt/* "$1"/var/log/dpkg.log "$1"/var/log/alternatives.log' \
  --customize-hook='echo "node-red:x:1000:1000:Node-RED:/data:/usr/sbin/nologin" >> "$1"/etc/passwd' \
  --customize-hook='echo "node-red:x:1000:" >> "$1"/etc/group' \
  --customize-hook='mkdir -p "$1"/data "$1"/usr/src/node-red && chown 1000:1000 "$1"/data "$1"/usr/src/node-red' \
  --customize-hook='printf "stackgen-node-base\n" > "$1"/etc/hostname' \
  "$suite" "$output" "$@"
