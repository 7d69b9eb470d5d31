"""stackgen.images.registry."""
