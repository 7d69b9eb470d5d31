"""Values from stack.yaml never become syntax in what stackgen renders (issue: injection in generate).

The mechanism: the spec admits only values that are plain in every target language (shell, Caddyfile,
nginx.conf, YAML, JS), and shell blueprints interpolate only through `| sh` (quoted as one word) or
`| word`/`| words` (checked plain). These tests hold both: every `{{ }}` of every shell blueprint, hostile
strings in every string field, and the rendered script run with a stub `certbot`.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stackgen.generate.render import render, shell_word
from stackgen.spec import Stack
from tests.golden import EXAMPLE_HASH, golden_stack

HOSTILE = ["$(id)", "`id`", "${HOME}", "a;id", "a\nid", "a'b", 'a"b', "a b", "#x", "{env.HOME}", "a|id", "a&id", "ü", "a\\b", "}", "a)b"]


def test_every_interpolation_in_a_shell_blueprint_is_quoted_or_checked():
    root = resources.files("stackgen.generate") / "blueprints"
    found = 0
    for path in Path(str(root)).rglob("*.sh.j2"):
        for expression in re.findall(r"\{\{(.*?)\}\}", path.read_text(), re.S):
            found += 1
            last = expression.strip().rsplit("|", 1)
            assert len(last) == 2 and last[1].strip() in ("sh", "word", "words"), f"{path.name}: {{{{{expression}}}}}"
    assert found > 20


def test_word_filter_refuses_what_is_not_plain():
    assert shell_word("nodered.example.org") == "nodered.example.org"
    for value in HOSTILE:
        with pytest.raises(ValueError):
            shell_word(value)


def base(**tls) -> dict:
    return {"project": "p", "domains": ["nodered.example.org"], "email": "ops@example.org",
            "tls": tls, "node_red": {"admin_password_hash": EXAMPLE_HASH}}


@pytest.mark.parametrize("email", ["ops@example.org$(id)", "ops@example.org`id`", "o;ps@example.org", "o ps@example.org",
                                   "ops@example.org\nid", "{ops}@example.org", "ops@exa$mple.org"])
def test_the_reported_injection_and_its_relatives_are_refused_naming_the_field(email):
    with pytest.raises(ValidationError) as caught:
        Stack.model_validate({**base(), "email": email})
    assert caught.value.errors()[0]["loc"] == ("email",)


@pytest.mark.parametrize("url", ["https://ca.example/dir$(id)", "https://ca.example/`id`", "https://ca.example/{env.X}",
                                 "https://ca.example/a b", "https://ca.example/a;b", "https://ca.example/'x'"])
def test_hostile_acme_directories_are_refused(url):
    with pytest.raises(ValidationError) as caught:
        Stack.model_validate(base(acme_directory=url))
    assert caught.value.errors()[0]["loc"] == ("tls", "acme_directory")


@pytest.mark.parametrize("field", ["cert_file", "key_file"])
def test_hostile_tls_paths_are_refused(field):
    tls = {"mode": "files", "cert_file": "tls/c.pem", "key_file": "tls/k.pem"}
    for value in ("tls/$(id).pem", "tls/a b.pem", "tls/a;b.pem", "tls/{x}.pem", "tls/a'.pem"):
        with pytest.raises(ValidationError) as caught:
            Stack.model_validate(base(**{**tls, field: value}))
        assert caught.value.errors()[0]["loc"] == ("tls", field)


STUB = """#!/usr/bin/env python3
import json, os, sys
with open(os.environ["STUB_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
"""


def obtain_argv(stack: Stack, tmp_path: Path) -> list[list[str]]:
    """Run the rendered run.sh's `obtain` with a stub certbot; return every argv it received. A canary
    file appears if anything else ran (`$(touch …)` in a value)."""
    script = {f.path: f.content.decode() for f in render(stack)}["certbot/run.sh"]
    function = re.search(r"^obtain\(\) \{.*?^\}", script, re.S | re.M).group(0)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "certbot").write_text(STUB)
    (bin_dir / "certbot").chmod(0o755)
    log = tmp_path / "argv.jsonl"
    subprocess.run(["sh", "-c", function + "\nobtain"], env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_LOG": str(log), "HOOK": "hook"},
                   cwd=tmp_path, check=True, timeout=20)
    return [json.loads(line) for line in log.read_text().splitlines()]


hostile_text = st.text(alphabet=st.sampled_from(list("ab.-_@%+:/$`(){};|&'\"\\ #\n~=,ü")), min_size=1, max_size=30)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(local=hostile_text, path=hostile_text)
def test_hostile_values_are_refused_or_reach_certbot_as_exactly_one_argument(tmp_path, local, path):
    """Property: for any e-mail local part and ACME directory path, the spec refuses the value, or the
    rendered script hands certbot exactly that value as one argument and runs nothing else."""
    email, url = f"{local}@example.org", f"https://ca.example{'/' + path if not path.startswith('/') else path}"
    try:
        stack = Stack.model_validate(base(acme_directory=url) | {"email": email})
    except ValidationError:
        return
    canary = tmp_path / "pwned"
    calls = obtain_argv(stack, tmp_path)
    assert not canary.exists()
    argv = calls[-1]
    assert argv[argv.index("--email") + 1] == email
    assert argv[argv.index("--server") + 1] == url


def test_a_quoted_value_stays_one_argument_even_if_the_spec_let_it_through(tmp_path):
    """Defense in depth: bypass the spec (model_construct) with `$(touch pwned)` in the e-mail."""
    stack = golden_stack("nginx", "certbot-http01")
    evil = "ops@example.org$(touch pwned)"
    stack = Stack.model_construct(**{**dict(stack), "email": evil})
    argv = obtain_argv(stack, tmp_path)[-1]
    assert argv[argv.index("--email") + 1] == evil
    assert not (tmp_path / "pwned").exists()


def test_rendered_scripts_parse():
    for edge, mode in (("caddy", "certbot-http01"), ("nginx", "internal"), ("traefik", "certbot-dns01"), ("caddy", "files")):
        for rendered in render(golden_stack(edge, mode)):
            if rendered.path.endswith(".sh"):
                subprocess.run(["sh", "-n"], input=rendered.content, check=True)
                assert rendered.mode & stat.S_IXUSR
