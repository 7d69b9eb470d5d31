"""`python -m stackgen.verify.rules` prints docs/rules.md."""

from stackgen.verify.rules.docs import rules_markdown

print(rules_markdown(), end="")
