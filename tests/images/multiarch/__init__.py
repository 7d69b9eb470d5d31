"""Small multi-arch base images for the Pi tests (`python -m tests.images.multiarch.build`)."""
