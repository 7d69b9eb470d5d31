"""Start-up time of `stackgen --help` and `stackgen verify` on a one-service file, before and after issue 12.

Goal (issue 12): each ≤ 150 ms, whole process, median of several runs.

How the comparison is kept fair: both sides run with this venv's interpreter and packages, from the
same working directory, with the same one-service compose file; only the `stackgen` package differs.
"before" is a `git worktree` of BEFORE_REV (the last commit before the CLI changed) put first on
PYTHONPATH, "after" is this checkout. Each side starts exactly as its console script does (the
`[project.scripts]` target of its own pyproject.toml, called from a `python -c` stub identical to
pip's wrapper), so neither pays for the other's import path. Runs are interleaved (load changes hit
both alike); round 0 warms the disk cache and writes .pyc files and is not counted. Wall time and
CPU time (user + system, from wait4) are both reported: wall is the goal, CPU is steadier on a busy
machine.

Run: `python -m bench.start_time [--runs N] [--before PATH]`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BEFORE_REV = "840b0ec"
GOAL_MS = 150.0
ONE_SERVICE = "services:\n  app:\n    image: x/app:1.0\n    user: '1000'\n"
COMMANDS = (("stackgen --help", ["--help"]), ("stackgen verify (1 service)", ["verify", "compose.yaml"]),
            ("stackgen verify --help", ["verify", "--help"]))


def console_target(tree: Path) -> tuple[str, str]:
    """The `stackgen` console script's module and function, as that tree's pyproject.toml declares them."""
    with open(tree / "pyproject.toml", "rb") as stream:
        module, _, function = tomllib.load(stream)["project"]["scripts"]["stackgen"].partition(":")
    return module, function


def stub(tree: Path) -> list[str]:
    """What pip's console-script wrapper runs, for `tree`'s entry point."""
    module, function = console_target(tree)
    code = f"import sys; sys.argv[0] = 'stackgen'; from {module} import {function}; sys.exit({function}())"
    return [sys.executable, "-c", code]


def ensure_before(path: Path) -> Path:
    if not (path / "stackgen").is_dir():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), BEFORE_REV], check=True)
    return path


def run_once(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds of one run (output discarded)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, _, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = 0  # reaped by wait4
    return wall, usage.ru_utime + usage.ru_stime


def measure(before: Path, runs: int) -> list[tuple[str, float, float, float, float]]:
    sides = {"before": (stub(before), before), "after": (stub(ROOT), ROOT)}
    base_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONDONTWRITEBYTECODE")}
    base_env.update(COLUMNS="100", NO_COLOR="1")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        (cwd / "compose.yaml").write_text(ONE_SERVICE)
        for label, args in COMMANDS:
            samples: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
            for round_ in range(runs + 1):
                for side, (command, tree) in sides.items():
                    sample = run_once(command + args, dict(base_env, PYTHONPATH=str(tree)), cwd)
                    if round_:
                        samples[side].append(sample)
            med = {side: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s)) for side, s in samples.items()}
            rows.append((label, med["before"][0] * 1000, med["after"][0] * 1000, med["before"][1] * 1000, med["after"][1] * 1000))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="Counted runs per command and side (median; at least 7).")
    parser.add_argument("--before", type=Path, default=Path("/tmp/before-start"), help=f"A checkout of {BEFORE_REV} (created if missing).")
    args = parser.parse_args()
    before = ensure_before(args.before)
    rows = measure(before, max(args.runs, 7))
    print(f"start-up, median of {max(args.runs, 7)} runs (ms); before = {BEFORE_REV} ({' '.join(console_target(before))}), "
          f"after = this checkout ({' '.join(console_target(ROOT))})")
    print(f"{'command':<30} {'before wall':>11} {'after wall':>11} {'speed-up':>9} {'before cpu':>11} {'after cpu':>10}  goal")
    for label, bw, aw, bc, ac in rows:
        goal = ("ok" if aw <= GOAL_MS else "OVER") if "--help" not in label or label == "stackgen --help" else "-"
        print(f"{label:<30} {bw:>11.0f} {aw:>11.0f} {bw / aw:>8.1f}x {bc:>11.0f} {ac:>10.0f}  {goal}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
