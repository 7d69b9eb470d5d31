"""Benchmarks that print ratios against a baseline measured in the same run: run one as `python -m bench.NAME`
from the repository root (`make bench` runs them all), so `stackgen` and the test helpers (`tests.*`) import plainly."""
