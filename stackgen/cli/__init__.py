"""stackgen.cli.app."""
