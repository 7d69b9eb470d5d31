"""Several Node-RED instances in one stack: `stackgen instance add/remove`.

`edit` changes the spec (pure: a `Stack` in, a `Stack` and notes out; a version 1 file becomes version 2
on the first `add`), `manage` carries a change out on a stack directory (stack.yaml, the rendered files, and
for `remove` the instance's container, and its data only when asked). Rendering instances is `generate`'s
(`generate/instances.py`), judging them `verify`'s (SG113).
"""
