"""stackgen.live.checks."""
