"""Helpers shared by the tests (cases, lexers, mutators, fakes)."""
