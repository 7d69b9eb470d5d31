#!/usr/bin/env python3
"""Regenerate compose/<name>/ from compose/<name>.stack.yaml, and (--golden) tests/golden/.

`make examples` and `make golden` call this; tests fail when the files are stale.
"""

from __future__ import annotations

import sys

from tests import golden


def main(argv: list[str]) -> int:
    for spec in golden.example_specs():
        target = golden.example_dir(spec)
        golden.write_tree(target, golden.example_stack(spec))
        print(f"rendered {spec.relative_to(golden.ROOT)} -> {target.relative_to(golden.ROOT)}/")
    if "--golden" in argv:
        for edge, mode in golden.combos():
            target = golden.golden_dir(edge, mode)
            golden.write_tree(target, golden.golden_stack(edge, mode))
            print(f"golden {edge} x {mode} -> {target.relative_to(golden.ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
