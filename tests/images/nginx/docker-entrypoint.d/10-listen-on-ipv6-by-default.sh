#!/bin/sh
# stackgen nginx twin: our equivalent of nginx-unprivileged's 10-listen-on-ipv6-by-default.sh.
# If the kernel has IPv6 and conf.d/default.conf still listens on 8080 (IPv4) only, add the same
# port on [::]. Skipped when the file cannot be written (read-only root) or was changed by the user
# (no `listen 8080;` line).
set -e
conf=/etc/nginx/conf.d/default.conf
name=$(basename "$0")
[ -f /proc/net/if_inet6 ] || { echo "$name: info: IPv6 not available"; exit 0; }
[ -f "$conf" ] || { echo "$name: info: $conf is not a file or does not exist"; exit 0; }
touch "$conf" 2>/dev/null || { echo "$name: info: can not modify $conf (read-only file system?)"; exit 0; }
if grep -q 'listen  *\[::\]:8080;' "$conf"; then
    echo "$name: info: IPv6 listen already enabled"
    exit 0
fi
if ! grep -q 'listen  *8080;' "$conf"; then
    echo "$name: info: $conf differs from the packaged version"
    exit 0
fi
sed -i -E 's,listen( +)8080;,listen\18080;\n    listen  [::]:8080;,' "$conf"
echo "$name: info: Enabled listen on IPv6 in $conf"
