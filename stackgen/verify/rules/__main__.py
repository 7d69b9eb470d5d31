"""`python -m stackgen.verify.rules` prints docs/rules.md."""

from stackgen.verify.rules import rules_markdown

print(rules_markdown(), end="")
