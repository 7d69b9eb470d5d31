#!/bin/bash
# ENTRYPOINT of the stackgen node-red twin (/usr/src/node-red/entrypoint.sh): our own equivalent of
# node-red/node-red-docker's docker-custom/scripts/entrypoint.sh. Node-RED runs as a child of this
# shell (not exec'd): SIGINT/SIGTERM are passed on to it, and the script waits for it to end.
# Arguments (the container's command) are appended after --userDir /data and the flows file.

on_signal() {
    kill "$NODE_RED_PID"
    wait "$NODE_RED_PID"
}
trap on_signal SIGINT SIGTERM

# $NODE_OPTIONS and $FLOWS are split on purpose (NODE_OPTIONS may hold several options).
/usr/local/bin/node $NODE_OPTIONS node_modules/node-red/red.js --userDir /data $FLOWS "$@" &
NODE_RED_PID=$!

wait "$NODE_RED_PID"
