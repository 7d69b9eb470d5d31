"""`python -m stackgen ...`: the same entry point as the `stackgen` console script."""

from stackgen.cli import entry

if __name__ == "__main__":
    entry()
