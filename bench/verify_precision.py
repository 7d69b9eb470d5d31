#!/usr/bin/env python3
"""Precision of `stackgen verify` on real home-lab compose files (tests/corpus/realworld/, labels in
tests/realworld.py): per file, the true catches, misses and false positives of the role-dependent rules
by the hand labels, and how many services got the role their label gives.

    python -m bench.verify_precision                      # this checkout
    git worktree add --detach /tmp/before e110a78         # the code before roles from evidence
    python -m bench.verify_precision --tree /tmp/before   # that checkout beside this one

Each checkout is measured in a child process that imports its `stackgen`; the labels are always this
checkout's. `--details` lists each miss and false positive.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The labels are always this checkout's (loaded by path: an older tree's `tests` package lacks them);
# `stackgen` is whichever PYTHONPATH puts first, the tree being measured.
_spec = importlib.util.spec_from_file_location("realworld", ROOT / "tests" / "realworld.py")
realworld = importlib.util.module_from_spec(_spec)
sys.modules["realworld"] = realworld
_spec.loader.exec_module(realworld)
Score, cases, measure, score = realworld.Score, realworld.cases, realworld.measure, realworld.score


def dump() -> int:
    """Child: verify every corpus file with the importable stackgen; JSON on stdout."""
    out = {}
    for case in cases():
        try:
            reported, roles = measure(case)
            out[case.name] = {"reported": sorted(reported), "roles": roles}
        except Exception as exc:  # an old checkout may refuse a file: that is a result too
            out[case.name] = {"error": f"{type(exc).__name__}: {exc}"}
    json.dump(out, sys.stdout)
    return 0


def collect(tree: Path | None) -> tuple[str, dict[str, Score | str]]:
    env = dict(os.environ)
    source = tree or ROOT
    env["PYTHONPATH"] = str(source)
    run = subprocess.run([sys.executable, __file__, "--dump"], env=env, capture_output=True, text=True, cwd=source)
    if run.returncode:
        sys.exit(f"measuring {source} failed:\n{run.stderr}")
    commit = subprocess.run(["git", "-C", str(source), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--", "stackgen"], capture_output=True, text=True)
    label = (commit.stdout.strip() or str(source)) + ("+wip" if dirty.stdout.strip() else "")
    data = json.loads(run.stdout)
    results: dict[str, Score | str] = {}
    for case in cases():
        item = data[case.name]
        if "error" in item:
            results[case.name] = item["error"]
        else:
            results[case.name] = score(case, {tuple(p) for p in item["reported"]}, item["roles"])
    return label, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", type=Path, default=[], help="another checkout to measure (repeatable)")
    parser.add_argument("--details", action="store_true", help="list each miss and false positive")
    parser.add_argument("--dump", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.dump:
        return dump()
    runs = [collect(tree) for tree in args.tree] + [collect(None)]
    names = [case.name for case in cases()]
    width = max(len(n) for n in names)
    head = f"{'file':<{width}}  " + "  ".join(f"{label:^26}" for label, _ in runs)
    sub = f"{'':<{width}}  " + "  ".join(f"{'catch':>6} {'miss':>4} {'FP':>3} {'roles':>7}  " for _ in runs)
    print(head)
    print(sub)
    totals = [[0, 0, 0, 0, 0, 0] for _ in runs]  # catches, must, misses, FPs, roles right, services
    for name in names:
        cells = []
        for (_, results), total in zip(runs, totals, strict=True):
            item = results[name]
            if isinstance(item, str):
                cells.append(f"{'error':>26}  ")
                continue
            must = len(item.case.must)
            right = len(item.case.roles) - len(item.role_errors)
            for i, n in enumerate((len(item.catches), must, len(item.misses), len(item.false_positives), right, len(item.case.roles))):
                total[i] += n
            cells.append(f"{f'{len(item.catches)}/{must}':>6} {len(item.misses):>4} {len(item.false_positives):>3} "
                         f"{f'{right}/{len(item.case.roles)}':>7}  ")
        print(f"{name:<{width}}  " + "  ".join(cells))
    print(f"{'total':<{width}}  " + "  ".join(
        f"{f'{t[0]}/{t[1]}':>6} {t[2]:>4} {t[3]:>3} {f'{t[4]}/{t[5]}':>7}  " for t in totals))
    print(f"\n{len(names)} files. catch: must-findings reported / labelled; miss: labelled, not reported; FP: a "
          "role-dependent finding that is wrong by the label; roles: services given their labelled role.")
    if args.details:
        for label, results in runs:
            print(f"\n{label}:")
            for name in names:
                item = results[name]
                if isinstance(item, str):
                    print(f"  {name}: {item}")
                    continue
                for service, rule in sorted(item.misses):
                    print(f"  {name}: miss {rule} {service}")
                for service, rule in sorted(item.false_positives):
                    print(f"  {name}: FP   {rule} {service}")
                for service, (want, given) in sorted(item.role_errors.items()):
                    print(f"  {name}: role {service}: {given}, labelled {want}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
