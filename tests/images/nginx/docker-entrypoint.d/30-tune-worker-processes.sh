#!/bin/sh
# stackgen nginx twin: our equivalent of nginx-unprivileged's 30-tune-worker-processes.sh.
# With NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE set, replace `worker_processes auto;` in
# nginx.conf by the number of CPUs this container may use (cgroup v2 cpu.max or v1 quota/period,
# else the online CPUs). Upstream also reads cpusets; this equivalent uses nproc for that part.
set -e
[ -z "${NGINX_ENTRYPOINT_WORKER_PROCESSES_AUTOTUNE:-}" ] && exit 0
name=$(basename "$0")
conf=/etc/nginx/nginx.conf
touch "$conf" 2>/dev/null || { echo "$name: info: can not modify $conf (read-only file system?)"; exit 0; }
ncpu=$(nproc)
quota=""
if [ -r /sys/fs/cgroup/cpu.max ]; then
    read -r q p < /sys/fs/cgroup/cpu.max
    [ "$q" != "max" ] && quota=$(( (q + p - 1) / p ))
elif [ -r /sys/fs/cgroup/cpu/cpu.cfs_quota_us ] && [ -r /sys/fs/cgroup/cpu/cpu.cfs_period_us ]; then
    q=$(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us); p=$(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)
    [ "$q" -gt 0 ] && quota=$(( (q + p - 1) / p ))
fi
if [ -n "$quota" ] && [ "$quota" -lt "$ncpu" ]; then ncpu=$quota; fi
sed -i -E "s/^( *worker_processes +)auto;/\1$ncpu;/" "$conf"
echo "$name: info: worker_processes set to $ncpu"
