#!/usr/bin/env python3
"""Benchmark: `stackgen verify --live` of the reference Caddy stack (goal: under 5 s).

Brings a stack up with pebble (as the integration tests do), then times the
whole live verify (observe + rules + drift + every probe) RUNS times and
prints the median, beside the static `stackgen verify` of the same file.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from stackgen import engine as engines
from stackgen.live.checks import verify_live
from stackgen.verify.pipeline import verify
from tests.integration.harness import start_stack, stop_stack

RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def main() -> int:
    engine = engines.client()
    stack = start_stack(engine, Path(tempfile.mkdtemp(prefix="stackgen-bench-live-")), "caddy")
    try:
        stack.network("public").disconnect(stack.pebble)
        live_times, static_times = [], []
        for _ in range(RUNS):
            start = time.monotonic()
            result = verify_live(engine, directory=stack.directory, ca_file=str(stack.issuing_root))
            live_times.append(time.monotonic() - start)
            start = time.monotonic()
            verify([stack.directory / "compose.yaml"])
            static_times.append(time.monotonic() - start)
        cells = len(result.matrix)
        print(f"live verify of the reference Caddy stack (median of {RUNS}): {statistics.median(live_times):.2f}s "
              f"({cells} reachability cells, {len(result.checks)} probes, exit {result.exit_code}); "
              f"static verify of its file: {statistics.median(static_times):.3f}s; goal < 5 s")
        return 0
    finally:
        stop_stack(stack)


if __name__ == "__main__":
    sys.exit(main())
