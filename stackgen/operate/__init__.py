"""stackgen.operate."""
