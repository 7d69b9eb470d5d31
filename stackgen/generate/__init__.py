"""stackgen.generate."""
