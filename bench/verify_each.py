#!/usr/bin/env python3
"""Benchmark: `stackgen verify --each` over 25 stacks in one process, against one process per stack
(what a shell loop over `stackgen verify FILE` costs). Median of RUNS; prints the ratio."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STACKGEN = str(ROOT / ".venv" / "bin" / "stackgen")
RUNS = int(os.environ.get("BENCH_RUNS", "5"))
COUNT = 25


def main() -> int:
    corpus = sorted((ROOT / "tests" / "corpus").glob("*.compose.yaml"))
    work = Path(tempfile.mkdtemp(prefix="stackgen-bench-each-"))
    try:
        files = []
        for i in range(COUNT):
            directory = work / f"stack{i:02d}"
            directory.mkdir()
            target = directory / "compose.yaml"
            shutil.copy(corpus[i % len(corpus)], target)
            files.append(target)
        each, loop = [], []
        for _ in range(RUNS):
            start = time.perf_counter()
            subprocess.run([STACKGEN, "verify", "--each", str(work), "--fail-on", "none"], capture_output=True, check=True)
            each.append(time.perf_counter() - start)
            start = time.perf_counter()
            for path in files:
                subprocess.run([STACKGEN, "verify", str(path), "--fail-on", "none"], capture_output=True, check=True)
            loop.append(time.perf_counter() - start)
        a, b = statistics.median(each), statistics.median(loop)
        print(f"verify {COUNT} stacks (median of {RUNS}): --each {a:.3f}s, one process per stack {b:.3f}s, ratio {a / b:.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
