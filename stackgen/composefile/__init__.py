"""stackgen.composefile."""
