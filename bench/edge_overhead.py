#!/usr/bin/env python3
"""Benchmark: what the edge costs. Requests/s and p50/p99 latency of one Node-RED HTTP endpoint,
through the edge (HTTPS, keep-alive) and straight to Node-RED (HTTP on the internal network), in the
same run, for Caddy and NGINX; and the idle memory of the whole stack.

Both measurements come from the same vantage point: a load container on the stack's internal
network (the host cannot reach Node-RED: `up` drops host <-> internal-bridge traffic), made from
the stack's own Node-RED image (it has `node`), so the only difference is the edge. Fixed request
count and concurrency; traffic goes only to the benchmark's own containers.

    BENCH_REQUESTS=3000 BENCH_CONCURRENCY=8 .venv/bin/python -m bench.edge_overhead
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from stackgen import engine as engines
from tests.integration.harness import start_stack, stop_stack

REQUESTS = int(os.environ.get("BENCH_REQUESTS", "3000"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "8"))
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", "20"))

# Runs inside the load container: N requests over C keep-alive connections; prints one JSON line.
LOAD_JS = r"""
const [url, host, count, conc, ca] = [process.argv[1], process.argv[2], +process.argv[3], +process.argv[4], process.argv[5]];
const u = new URL(url); const mod = require(u.protocol === 'https:' ? 'https' : 'http');
const agent = new mod.Agent({keepAlive: true, maxSockets: conc});
const opts = {host: u.hostname, port: u.port, path: u.pathname, agent, headers: {Host: host}, servername: host, ca: ca || undefined};
const lat = []; let done = 0, bad = 0, next = 0;
function one(resolve) {
  if (next >= count) return resolve();
  next++; const t0 = process.hrtime.bigint();
  mod.get(opts, r => { r.resume(); r.on('end', () => { if (r.statusCode !== 200) bad++;
    lat.push(Number(process.hrtime.bigint() - t0) / 1e6); done++; one(resolve); }); })
   .on('error', () => { bad++; done++; one(resolve); });
}
const t0 = Date.now();
// warm-up: one request per connection, not counted
Promise.all(Array.from({length: conc}, () => new Promise(r => mod.get(opts, x => { x.resume(); x.on('end', r); }).on('error', r))))
 .then(() => { const s = Date.now(); return Promise.all(Array.from({length: conc}, () => new Promise(one))).then(() => s); })
 .then(s => { const secs = (Date.now() - s) / 1000; lat.sort((a, b) => a - b);
   const q = p => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))];
   console.log(JSON.stringify({requests: done, errors: bad, rps: done / secs, p50: q(0.5), p99: q(0.99)})); });
"""

FLOW = [
    {"id": "bench-tab", "type": "tab", "label": "bench"},
    {"id": "bench-in", "type": "http in", "z": "bench-tab", "url": "/bench", "method": "get", "wires": [["bench-out"]]},
    {"id": "bench-out", "type": "http response", "z": "bench-tab", "statusCode": "200", "wires": []},
]


def load(stack, url: str, host: str, ca: str) -> dict:
    image = stack.container("node-red").attrs["Config"]["Image"]
    container = stack.engine.containers.create(
        image, ["-e", LOAD_JS, url, host, str(REQUESTS), str(CONCURRENCY), ca], entrypoint=["node"],
        network=f"{stack.project}_internal", user="65534:65534", read_only=True, cap_drop=["ALL"],
    )
    try:
        container.start()
        container.wait(timeout=600)
        return json.loads(container.logs(stdout=True, stderr=False).decode().strip().splitlines()[-1])
    finally:
        container.remove(force=True, v=True)


def idle_memory(stack) -> dict[str, float]:
    time.sleep(IDLE_SECONDS)
    usage = {}
    for name in ("node-red", "edge", "certbot"):
        stats = stack.container(name).stats(stream=False)
        memory = stats["memory_stats"]
        cache = memory.get("stats", {}).get("total_inactive_file", memory.get("stats", {}).get("inactive_file", 0))
        usage[name] = (memory["usage"] - cache) / 2**20
    return usage


def bench(engine, edge: str, workdir: Path) -> dict:
    stack = start_stack(engine, workdir, edge)
    try:
        token = stack.token()
        deploy = stack.https("/flows", method="POST", body=json.dumps(FLOW).encode(),
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json",
                                      "Node-RED-Deployment-Type": "full"})
        assert deploy.status in (200, 204), deploy.body
        deadline = time.monotonic() + 20
        while stack.https("/bench").status != 200:
            assert time.monotonic() < deadline, "the benchmark flow does not answer"
            time.sleep(0.5)
        memory = idle_memory(stack)
        ca = stack.issuing_root.read_text()
        edge_ip, node_red_ip = stack.address("edge", "internal"), stack.address("node-red", "internal")
        direct = load(stack, f"http://{node_red_ip}:1880/bench", "node-red", "")
        through = load(stack, f"https://{edge_ip}:8443/bench", stack.domain, ca)
        return {"edge": edge, "direct": direct, "through_edge": through, "idle_memory_mib": memory}
    finally:
        stop_stack(stack)


def main() -> int:
    engine = engines.client()
    results = []
    workdir = Path(tempfile.mkdtemp(prefix="stackgen-bench-edge-"))
    try:
        for edge in ("caddy", "nginx"):
            results.append(bench(engine, edge, workdir / edge))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"edge overhead: {REQUESTS} requests, {CONCURRENCY} keep-alive connections, from a container on the internal network")
    print(f"{'edge':8} {'path':14} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}")
    for r in results:
        for label, key in (("direct", "direct"), ("through edge", "through_edge")):
            m = r[key]
            print(f"{r['edge']:8} {label:14} {m['rps']:9.0f} {m['p50']:8.2f} {m['p99']:8.2f} {m['errors']:6d}")
        ratio = r["through_edge"]["rps"] / r["direct"]["rps"]
        print(f"{r['edge']:8} {'ratio':14} {ratio:9.2f}  (through edge / direct, requests/s)")
    for r in results:
        memory = r["idle_memory_mib"]
        total = sum(memory.values())
        parts = ", ".join(f"{k} {v:.1f}" for k, v in memory.items())
        print(f"idle memory, {r['edge']} stack: {total:.1f} MiB ({parts})")
    print(json.dumps(results))
    failed = any(r[k]["errors"] for r in results for k in ("direct", "through_edge"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
