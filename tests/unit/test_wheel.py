"""The package works from a wheel, not only from this checkout: templates and schemas ship inside it."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_ships_blueprints_and_runs_init(tmp_path: Path):
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(ROOT)],
        capture_output=True, text=True,
    )
    assert build.returncode == 0, build.stderr
    wheel = next((tmp_path / "dist").glob("stackgen-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("stackgen/generate/blueprints/caddy/Caddyfile.j2", "stackgen/generate/blueprints/nginx/nginx.conf.j2",
                     "stackgen/generate/blueprints/traefik/dynamic.yml.j2", "stackgen/upstream/contracts/node-red.yaml"):
        assert expected in names, expected
    assert not any("sarif-schema" in n for n in names), "the SARIF schema is test data, not part of the product"
    assert not any(n.startswith("tests/") for n in names)
    target = tmp_path / "site"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stderr
    (tmp_path / "pw").write_text("wheel-install-pw\n")
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = (
        "import stackgen, sys; assert stackgen.__file__.startswith(sys.argv[1]), stackgen.__file__; "
        "from stackgen.cli import entry; sys.argv = sys.argv[1:]; sys.argv[0] = 'stackgen'; entry()"
    )
    run = subprocess.run(
        [sys.executable, "-c", code, str(target), "init", str(tmp_path / "stack"), "--non-interactive", "--domain", "w.example.org",
         "--email", "w@example.org", "--admin-password-file", str(tmp_path / "pw")],
        capture_output=True, text=True, env=env, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert (tmp_path / "stack" / "edge" / "Caddyfile").exists()
