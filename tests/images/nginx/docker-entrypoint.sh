#!/bin/sh
# Entrypoint of the stackgen nginx twin: our own equivalent of docker-nginx-unprivileged's
# docker-entrypoint.sh (stable/alpine-slim/docker-entrypoint.sh). When the command is nginx (or
# nginx-debug), it first runs the scripts of /docker-entrypoint.d in version order: executable *.sh
# are run, executable *.envsh are sourced (so they can export variables for the next ones); anything
# else is skipped with a message. NGINX_ENTRYPOINT_QUIET_LOGS=1 silences its messages. Then it execs
# the command.
set -e

say() {
    if [ -z "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ]; then
        echo "$@"
    fi
}

if [ "$1" = "nginx" ] || [ "$1" = "nginx-debug" ]; then
    scripts=$(find /docker-entrypoint.d/ -follow -mindepth 1 -maxdepth 1 -type f 2>/dev/null | sort -V)
    if [ -n "$scripts" ]; then
        say "$0: /docker-entrypoint.d/ is not empty, will attempt to perform configuration"
        say "$0: Looking for shell scripts in /docker-entrypoint.d/"
        for script in $scripts; do
            case "$script" in
                *.envsh)
                    if [ -x "$script" ]; then
                        say "$0: Sourcing $script"
                        . "$script"
                    else
                        say "$0: Ignoring $script, not executable"
                    fi
                    ;;
                *.sh)
                    if [ -x "$script" ]; then
                        say "$0: Launching $script"
                        "$script"
                    else
                        say "$0: Ignoring $script, not executable"
                    fi
                    ;;
                *)
                    say "$0: Ignoring $script"
                    ;;
            esac
        done
        say "$0: Configuration complete; ready for start up"
    else
        say "$0: No files found in /docker-entrypoint.d/, skipping configuration"
    fi
fi

exec "$@"
