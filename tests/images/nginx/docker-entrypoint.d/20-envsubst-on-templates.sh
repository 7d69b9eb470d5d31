#!/bin/sh
# stackgen nginx twin: our equivalent of nginx-unprivileged's 20-envsubst-on-templates.sh.
# Every $NGINX_ENVSUBST_TEMPLATE_DIR/**/*$NGINX_ENVSUBST_TEMPLATE_SUFFIX (default
# /etc/nginx/templates/*.template) is rendered with envsubst, substituting only variables that are
# defined in the environment, into $NGINX_ENVSUBST_OUTPUT_DIR (default /etc/nginx/conf.d) under the
# same relative path without the suffix.
set -e
name=$(basename "$0")
template_dir="${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}"
suffix="${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}"
output_dir="${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}"
filter="${NGINX_ENVSUBST_FILTER:-}"

[ -d "$template_dir" ] || exit 0
if [ ! -w "$output_dir" ]; then
    echo "$name: ERROR: $template_dir exists, but $output_dir is not writable" >&2
    exit 0
fi
defined=$(env | cut -d= -f1 | grep -E "${filter:-.}" | sed 's/^/${/; s/$/}/' | tr '\n' ' ')
find "$template_dir" -follow -type f -name "*$suffix" -print | while read -r template; do
    relative="${template#"$template_dir/"}"
    output="$output_dir/${relative%"$suffix"}"
    mkdir -p "$(dirname "$output")"
    echo "$name: Running envsubst on $template to $output"
    envsubst "$defined" < "$template" > "$output"
done
