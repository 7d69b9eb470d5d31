#!/bin/bash
# Make foreign-architecture containers runnable here (QEMU user emulation through binfmt_misc),
# and install the local registry the multi-arch tests start (Debian's docker-registry).
#
#   scripts/ensure-emulation.sh            # arm64 and arm (arm/v7) handlers
#
# Idempotent: what is already mounted, installed or registered is left alone.
# Needs root when something has to be mounted or installed.
#
# Why each step:
# * binfmt_misc must be mounted before the handlers can be registered (a fresh container or VM
#   often has it unmounted).
# * Debian's qemu-user-static registers its handlers with the "F" (fix binary) flag: the kernel
#   opens the static emulator at registration time, so it also works inside containers whose
#   root file system has no qemu. binfmt-support does the registration (update-binfmts).
# * docker-registry is installed with service starts denied (policy-rc.d): the tests run their
#   own instance on 127.0.0.1 with their own config; a system instance on :5000 would listen on
#   every interface.
set -euo pipefail

BINFMT=/proc/sys/fs/binfmt_misc
HANDLERS=(qemu-aarch64 qemu-arm)

say() { printf 'ensure-emulation: %s\n' "$*"; }
die() { printf 'ensure-emulation: ERROR: %s\n' "$*" >&2; exit 1; }

apt_updated=0
apt_install() {
    [ "$(id -u)" = 0 ] || die "need root to install: $*"
    if [ "$apt_updated" = 0 ]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        apt_updated=1
    fi
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# written by stackgen ensure-emulation.sh for the duration of apt-get install\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        made_policy=1
    fi
    say "apt-get install $*"
    local rc=0
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || rc=$?
    [ "$made_policy" = 1 ] && rm -f "$policy"
    [ "$rc" = 0 ] || die "apt-get install $* failed (exit $rc)"
}

# --- binfmt_misc mounted ------------------------------------------------------------------
if [ ! -e "$BINFMT/register" ]; then
    [ "$(id -u)" = 0 ] || die "$BINFMT is not mounted and mounting it needs root"
    say "mounting binfmt_misc on $BINFMT"
    mount -t binfmt_misc binfmt_misc "$BINFMT" || die "cannot mount binfmt_misc (a container needs --privileged for this)"
fi

# --- emulators and the registry -----------------------------------------------------------
missing=()
[ -x /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
command -v update-binfmts >/dev/null 2>&1 || missing+=(binfmt-support)
[ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

# --- handlers registered and enabled ------------------------------------------------------
for handler in "${HANDLERS[@]}"; do
    if [ ! -e "$BINFMT/$handler" ]; then
        say "registering $handler"
        update-binfmts --import "$handler" >/dev/null 2>&1 || true
        update-binfmts --enable "$handler" >/dev/null 2>&1 || true
    fi
    [ -e "$BINFMT/$handler" ] || die "$handler is not registered in $BINFMT (is qemu-user-static installed?)"
    if ! head -n1 "$BINFMT/$handler" | grep -qx enabled; then
        say "enabling $handler"
        echo 1 >"$BINFMT/$handler" || die "cannot enable $handler"
    fi
    flags=$(sed -n 's/^flags: *//p' "$BINFMT/$handler")
    case "$flags" in
        *F*) ;;
        *) say "warning: $handler lacks the F flag ($flags): emulation may fail inside containers" ;;
    esac
    say "$handler: enabled ($(sed -n 's/^interpreter //p' "$BINFMT/$handler"), flags $flags)"
done
