"""`python -m stackgen.rules` prints docs/rules.md."""

from stackgen.rules import rules_markdown

print(rules_markdown(), end="")
