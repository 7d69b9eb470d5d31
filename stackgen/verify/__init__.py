"""stackgen.verify.pipeline."""
