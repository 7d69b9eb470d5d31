"""What stackgen knows of the upstream images our users pull: the image contracts (every fact with
its source), the edges' file capabilities, and platforms. Vocabulary: render, spec, verify and the
image tools all read it, and it touches neither the engine nor a registry."""
