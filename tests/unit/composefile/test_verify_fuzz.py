"""Mutated input files: a clear one-line error naming the file (and line) or the field, or a result; never a
traceback, a hang or a half-written directory (issue 11, part 2). Fixed seeds and budgets, so CI runs the same
inputs every time; each test prints (and records, for junit XML) how many mutants of which classes it ran.

* compose files (tests/corpus and the golden stacks): `verify` -> ComposeError/StackgenError or a result;
* stack.yaml (compose/*.stack.yaml and every edge x TLS-mode golden spec): `stackgen generate DIR` exits 0
  (every file rendered) or 2 (stack.yaml or a field named, nothing written), never 1 or a traceback;
* `stackgen init` with a hostile value for one flag: 0 or 2 (the flag named, nothing written);
* `.env` and an env_file: `verify` -> an error naming the env file, or a result.

Crash classes these found, each fixed and kept below as an example: YAML nested deeper than the builder's
recursion (RecursionError), long-syntax volume `source:` a mapping or list (TypeError in the rules, unhashable
in the loader), ruamel's own exceptions on `"\\U0011ffff"`, `!!int x`, `0x_` and control characters in
stack.yaml (ValueError, IndexError, ReaderError: exit 1 with a traceback), ruamel taking seconds on deeply
nested flow collections in stack.yaml, and SG027's regular expression taking seconds on a 100 KB variable.
"""

from __future__ import annotations

import collections
import random
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stackgen.cli.app import app
from stackgen.composefile.yaml_loader import ComposeError
from stackgen.errors import StackgenError
from stackgen.stackdir import dump_stack
from stackgen.verify.pipeline import verify
from tests.golden import EXAMPLE_HASH, combos, golden_stack
from tests.support import mutants

ROOT = Path(__file__).resolve().parents[3]
CORPUS = sorted((ROOT / "tests" / "corpus").glob("*.compose.yaml")) + sorted((ROOT / "tests" / "golden").glob("*/compose.yaml"))
SEED = 11
BUDGET = {"compose": 1500, "stack.yaml": 300, "init": 60, ".env": 500}


def summary(kind: str, outcomes: collections.Counter, classes: collections.Counter, started: float) -> str:
    top = ", ".join(f"{name} {count}" for name, count in classes.most_common())
    return (f"{kind}: {sum(outcomes.values())} mutants in {time.perf_counter() - started:.1f}s, "
            f"{dict(outcomes)}; operators: {top}")


def test_compose_mutants_get_a_named_error_or_a_result(tmp_path, record_property):
    rng = random.Random(SEED)
    outcomes, classes, crashes = collections.Counter(), collections.Counter(), []
    started = time.perf_counter()
    path = tmp_path / "compose.yaml"
    for _ in range(BUDGET["compose"]):
        source = rng.choice(CORPUS)
        mutant = mutants.mutate(rng, source.name, source.read_text())
        classes.update(mutant.operators)
        path.write_bytes(mutant.text)
        try:
            verify([path], project_dir=tmp_path, fail_on=None, environ={})
            outcomes["judged"] += 1
        except ComposeError as exc:
            outcomes["refused"] += 1
            if not (exc.file and exc.message.strip()):
                crashes.append(f"{mutant.label} on {source.name}: an error without its file: {exc}")
        except StackgenError as exc:
            outcomes["refused"] += 1
            assert str(exc).strip()
        except Exception as exc:  # noqa: BLE001 - the point of the test
            crashes.append(f"{mutant.label} on {source.name}: {type(exc).__name__}: {exc}")
    report = summary("compose", outcomes, classes, started)
    print(report)
    record_property("fuzz_compose", report)
    assert not crashes, crashes[:5]


def _write_inputs(directory: Path) -> None:
    """The files the corpus specs refer to (so that a mutant can get as far as rendering)."""
    for name, data in {"ca/home-ca.pem": b"pem", "secrets/cloudflare.ini": b"dns_cloudflare_api_token = x\n",
                       "tls/fullchain.pem": b"pem", "tls/privkey.pem": b"pem"}.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)


def _tree(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def test_stack_yaml_mutants_generate_everything_or_exit_2_naming_the_file(tmp_path, record_property):
    corpus = [(p.name, p.read_text()) for p in sorted((ROOT / "compose").glob("*.stack.yaml"))]
    corpus += [(f"{edge}-{mode}", dump_stack(golden_stack(edge, mode)).decode()) for edge, mode in combos()]
    rng = random.Random(SEED)
    runner = CliRunner()
    outcomes, classes, crashes = collections.Counter(), collections.Counter(), []
    started = time.perf_counter()
    for idx in range(BUDGET["stack.yaml"]):
        name, text = rng.choice(corpus)
        mutant = mutants.mutate(rng, name, text)
        classes.update(mutant.operators)
        directory = tmp_path / f"m{idx}"
        _write_inputs(directory)
        (directory / "stack.yaml").write_bytes(mutant.text)
        before = _tree(directory)
        result = runner.invoke(app, ["generate", str(directory)])
        where = f"{mutant.label} on {name}"
        if result.exit_code == 0:
            outcomes["generated"] += 1
            after = _tree(directory)
            if "compose.yaml" not in after or ".stackgen.lock" not in after:
                crashes.append(f"{where}: exit 0 without compose.yaml and the lock")
        elif result.exit_code == 2:
            outcomes["refused"] += 1
            if _tree(directory) != before:
                crashes.append(f"{where}: exit 2, but files were written: {sorted(set(_tree(directory)) - set(before))}")
            if "stack.yaml" not in result.output and "node_red." not in result.output and "tls." not in result.output:
                crashes.append(f"{where}: exit 2 without naming stack.yaml or a field: {result.output.strip()[:200]}")
        else:
            crashes.append(f"{where}: exit {result.exit_code}: {type(result.exception).__name__}: {result.exception}")
        if "Traceback" in result.output:
            crashes.append(f"{where}: a traceback")
    report = summary("stack.yaml", outcomes, classes, started)
    print(report)
    record_property("fuzz_stack_yaml", report)
    assert not crashes, crashes[:5]


def test_init_with_a_hostile_flag_value_exits_0_or_2_naming_the_flag(tmp_path, monkeypatch, record_property):
    from stackgen.cli.app import FLAG_OF_FIELD
    from stackgen.generate import passwords
    from tests.unit.generate.test_render_hostile import FRAGMENTS

    monkeypatch.setattr(passwords, "hash_password", lambda password: EXAMPLE_HASH)  # bcrypt is not what is tested
    (tmp_path / "pw").write_text("a-long-enough-password\n")
    flags = sorted({flag for flag in FLAG_OF_FIELD.values() if flag not in ("--staging", "--egress", "--admin-password-file",
                                                                          "--http-port", "--https-port")})
    base = {"--domain": "nodered.example.org", "--email": "ops@example.org", "--edge": "caddy", "--tls-mode": "certbot-http01",
            "--platform": "linux/amd64"}
    rng = random.Random(SEED)
    runner = CliRunner()
    outcomes, crashes = collections.Counter(), []
    started = time.perf_counter()
    for idx in range(BUDGET["init"]):
        flag = rng.choice(flags)
        value = rng.choice(["nodered.example.org", "ops@example.org", "caddy", "/admin", "x"])
        for _ in range(rng.randint(1, 2)):
            at = rng.randrange(len(value) + 1)
            value = value[:at] + rng.choice(FRAGMENTS) + value[at:]
        value = value.replace("\x00", "")  # no argv holds a NUL
        options = {**base, flag: value}
        directory = tmp_path / f"i{idx}"
        args = ["init", str(directory), "--non-interactive", "--admin-password-file", str(tmp_path / "pw")]
        args += [part for key, val in options.items() for part in (key, val)]
        result = runner.invoke(app, args)
        outcomes[result.exit_code] += 1
        if result.exit_code == 2:
            if directory.exists():
                crashes.append(f"{flag}={value!r}: exit 2, but {directory.name} was written")
            if flag not in result.output:
                crashes.append(f"{flag}={value!r}: exit 2 without naming the flag: {result.output.strip()[:200]}")
        elif result.exit_code != 0:
            crashes.append(f"{flag}={value!r}: exit {result.exit_code}: {type(result.exception).__name__}: {result.exception}")
    report = f"init: {BUDGET['init']} mutants in {time.perf_counter() - started:.1f}s, exit codes {dict(outcomes)}"
    print(report)
    record_property("fuzz_init", report)
    assert not crashes, crashes[:5]


ENV_COMPOSE = (
    "services:\n  app:\n    image: alpine:${TAG:-3.20}\n    ports: [\"${BIND:-127.0.0.1}:${PORT:-8080}:80\"]\n"
    "    env_file: app.env\n    environment:\n      GREETING: ${GREETING-hi}\n      A: $A\n"
)
ENV = "TAG=3.20\nPORT=8080\n# comment\nGREETING=\"hello\\nworld\"\nA='single $x'\nexport BIND=127.0.0.1\n"


def test_env_file_mutants_get_a_named_error_or_a_result(tmp_path, record_property):
    (tmp_path / "compose.yaml").write_text(ENV_COMPOSE)
    rng = random.Random(SEED)
    outcomes, classes, crashes = collections.Counter(), collections.Counter(), []
    started = time.perf_counter()
    for _ in range(BUDGET[".env"]):
        dotenv, env_file = mutants.mutate_env(rng, ENV), mutants.mutate_env(rng, ENV)
        classes.update(dotenv.operators + env_file.operators)
        (tmp_path / ".env").write_bytes(dotenv.text)
        (tmp_path / "app.env").write_bytes(env_file.text)
        began = time.perf_counter()
        try:
            verify([tmp_path / "compose.yaml"], project_dir=tmp_path, fail_on=None, environ={})
            outcomes["judged"] += 1
        except ComposeError as exc:
            outcomes["refused"] += 1
            if not exc.file:
                crashes.append(f"{dotenv.label} / {env_file.label}: an error without its file: {exc}")
        except Exception as exc:  # noqa: BLE001 - the point of the test
            crashes.append(f"{dotenv.label} / {env_file.label}: {type(exc).__name__}: {exc}")
        if time.perf_counter() - began > 1.0:
            crashes.append(f"{dotenv.label} / {env_file.label}: {time.perf_counter() - began:.1f}s for a few lines")
    report = summary(".env", outcomes, classes, started)
    print(report)
    record_property("fuzz_env", report)
    assert not crashes, crashes[:5]


# --- what the fuzz found, kept as examples --------------------------------------------------------------


def test_yaml_nested_deeper_than_any_compose_file_is_refused_at_its_line(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n  app:\n    image: alpine:3.20\n    labels:\n      x: " + "[" * 400 + "]" * 400 + "\n")
    with pytest.raises(ComposeError, match="nested more than 200 levels deep") as caught:
        verify([path], project_dir=tmp_path)
    assert caught.value.line == 5


@pytest.mark.parametrize("source", ["{x: 1}", "[a, b]", "1"])
def test_a_long_syntax_volume_source_of_the_wrong_type_is_a_compose_error(tmp_path, source):
    path = tmp_path / "compose.yaml"
    path.write_text(f"services:\n  app:\n    image: alpine:3.20\n    volumes:\n      - type: volume\n        source: {source}\n"
                    "        target: /data\n")
    with pytest.raises(ComposeError, match=r"services.app.volumes\[0\].source must be a string") as caught:
        verify([path], project_dir=tmp_path)
    assert caught.value.line == 6


@pytest.mark.parametrize(("entry", "message"), [("{target: [80]}", r"ports\[0\].target must be a string or a number"),
                                                ("{target: 80, host_ip: [a]}", r"ports\[0\].host_ip must be a string")])
def test_long_syntax_ports_of_the_wrong_type_are_compose_errors(tmp_path, entry, message):
    path = tmp_path / "compose.yaml"
    path.write_text(f"services:\n  app:\n    image: alpine:3.20\n    ports:\n      - {entry}\n")
    with pytest.raises(ComposeError, match=message):
        verify([path], project_dir=tmp_path)


def test_a_control_character_in_a_compose_file_names_its_line(tmp_path):
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n  app:\n    image: alpine\x1d:3.20\n")
    with pytest.raises(ComposeError, match="character #x001d is not allowed") as caught:
        verify([path], project_dir=tmp_path)
    assert (caught.value.line, caught.value.col) == (3, 18)


def test_a_100_kb_variable_is_judged_in_well_under_a_second(tmp_path):
    """SG027's URL pattern was quadratic: five seconds for this file."""
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n  app:\n    image: alpine:3.20\n    environment:\n      A: " + "ab" * 50_000 + "\n")
    started = time.perf_counter()
    verify([path], project_dir=tmp_path, fail_on=None)
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(("text", "message"), [
    ('project: "\\U0011ffff"\n', "stack.yaml: not valid YAML: chr() arg not in range"),
    ("project: p\nemail: a\x1db\n", "stack.yaml:2: not valid YAML: special characters are not allowed (character #x001d)"),
    ("project: !!int x\n", "stack.yaml: not valid YAML: invalid literal for int()"),
    ("project: 0x_\n", "stack.yaml: not valid YAML"),
    ("domains: " + "[" * 5000 + "]" * 5000 + "\n", "stack.yaml:1: nested more than 64 brackets deep"),
])
def test_stack_yaml_the_yaml_reader_chokes_on_exits_2_naming_the_file(tmp_path, text, message):
    (tmp_path / "stack.yaml").write_text(text)
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["generate", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert message in result.output.replace("\n", " ")
    assert time.perf_counter() - started < 1.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stack.yaml"]


@pytest.mark.parametrize(
    ("service", "message"),
    [
        ("    network_mode: 31\n", r"services.app.network_mode must be a string, not 31"),
        ("    image: [a, b]\n", r"services.app.image must be a string"),
        ("    extends: 1\n", r"services.app.extends must be a string or a mapping"),
        ("    healthcheck:\n      test: 5\n", r"services.app.healthcheck.test must be a string or a list"),
        ("    cap_drop: true\n", r"services.app.cap_drop must be a list"),
        ("    cap_add: [1]\n", r"services.app.cap_add\[0\] must be a string"),
        ("    logging:\n      driver: [x]\n", r"services.app.logging.driver must be a string"),
        ("    restart: 5\n", r"services.app.restart must be a string"),
    ],
)
def test_wrong_types_get_composes_kind_of_error_with_the_line(tmp_path, service, message):
    path = tmp_path / "compose.yaml"
    path.write_text("services:\n  app:\n" + service)
    with pytest.raises(ComposeError, match=message) as caught:
        verify([path], project_dir=tmp_path)
    assert caught.value.line == 2 + service.count("\n"), "the line of the offending key"


@pytest.mark.parametrize("text", ["services:\n", "services: 3\n"])
def test_services_must_be_a_mapping(tmp_path, text):
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    with pytest.raises(ComposeError, match="`services` must be a mapping"):
        verify([path], project_dir=tmp_path)
