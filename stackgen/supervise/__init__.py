"""stackgen.supervise."""
