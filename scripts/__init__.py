"""Maintenance scripts (`make demo`, `make examples`, `make screenshots`): run one as `python -m scripts.NAME` from the
repository root, so the test helpers they share (`tests.golden`, `tests.acme`, `tests.chromium`) import plainly."""
