"""Benchmark: `stackgen verify` against compose-lint on a 1-service and a 200-service file.

A benchmark, not a test: it prints times and ratios measured in the same run on
the same files. Goal: no slower than compose-lint on 1 service, at most a third
of its time on 200 services.

compose-lint is installed into its own venv under `.cache/bench-compose-lint`
(created on first run). Run: `python -m bench.verify_speed [--runs N]`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".cache" / "bench-compose-lint"
COMPOSE_LINT_VERSION = "0.36.2"
GOAL_1, GOAL_200 = 1.0, 1 / 3

_HARDENED = """\
  {name}:
    image: nodered/node-red:4.0.9
    user: "1000:1000"
    networks: [internal]
    volumes:
      - {name}-data:/data
      - ./settings.js:/data/settings.js:ro
    environment:
      TZ: Etc/UTC
      NODE_RED_CREDENTIAL_SECRET_FILE: /run/secrets/nr
    read_only: true
    tmpfs: ["/tmp"]
    cap_drop: [ALL]
    security_opt: ["no-new-privileges:true"]
    mem_limit: 512m
    cpus: 1.0
    pids_limit: 256
    healthcheck:
      test: ["CMD", "true"]
      interval: 10s
    restart: unless-stopped
    logging:
      driver: json-file
      options: {{max-size: 10m, max-file: "3"}}
"""
_INSECURE = """\
  {name}:
    image: nodered/node-red:latest
    user: root
    ports:
      - "{port}:1880"
    volumes:
      - {name}-data:/data
      - /var/run/docker.sock:/var/run/docker.sock
    environment:
      - TZ=Europe/Berlin
      - MQTT_PASSWORD=hunter2
      - DATABASE_URL=postgres://app:secret@db:5432/app
    cap_add: [NET_ADMIN]
    restart: unless-stopped
"""


def compose_file(services: int) -> str:
    """A realistic mix: two hardened services for every insecure one."""
    parts = ["services:\n"]
    volumes = []
    for i in range(services):
        name = f"svc{i}"
        template = _INSECURE if i % 3 == 2 else _HARDENED
        parts.append(template.format(name=name, port=20000 + i))
        volumes.append(f"  {name}-data: {{}}\n")
    parts.append("networks:\n  internal: {internal: true}\nvolumes:\n")
    parts.extend(volumes)
    return "".join(parts)


def ensure_compose_lint() -> Path | None:
    exe = VENV / "bin" / "compose-lint"
    if exe.exists():
        return exe
    print(f"installing compose-lint {COMPOSE_LINT_VERSION} into {VENV} ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run(
            [str(VENV / "bin" / "pip"), "install", "--quiet", f"compose-lint=={COMPOSE_LINT_VERSION}"],
            check=True,
        )
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"cannot install compose-lint ({exc}); skipping the comparison")
        shutil.rmtree(VENV, ignore_errors=True)
        return None
    return exe if exe.exists() else None


def stackgen_commands() -> list[tuple[str, list[str]]]:
    """What to time: the installed `stackgen verify` (when it has it) and the module's fast path."""
    commands = []
    script = Path(sys.executable).with_name("stackgen")
    if script.exists() and subprocess.run([str(script), "verify", "--help"], capture_output=True).returncode == 0:
        commands.append(("stackgen verify", [str(script), "verify"]))
    commands.append(("python -m stackgen", [sys.executable, "-m", "stackgen", "verify"]))
    return commands


def timed(commands: list[list[str]], runs: int, cwd: Path) -> list[float]:
    """Median wall time of each command; runs are interleaved so load changes hit all alike."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    samples: list[list[float]] = [[] for _ in commands]
    for round_ in range(runs + 1):  # round 0 warms the disk cache and writes .pyc files
        for i, cmd in enumerate(commands):
            start = time.perf_counter()
            proc = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            elapsed = time.perf_counter() - start
            if proc.returncode not in (0, 1):
                raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.decode()[-500:]}")
            if round_:
                samples[i].append(elapsed)
    return [statistics.median(s) for s in samples]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    lint = ensure_compose_lint()
    # An installed wheel has its bytecode compiled; do the same for a source checkout.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "stackgen")], check=False)
    commands = stackgen_commands()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "settings.js").write_text("module.exports = {};\n")
        for count, goal in ((1, GOAL_1), (200, GOAL_200)):
            path = work / f"compose-{count}.yaml"
            path.write_text(compose_file(count))
            cmds = [cmd + [str(path)] for _, cmd in commands] + ([[str(lint), str(path)]] if lint else [])
            times = timed(cmds, args.runs, work)
            theirs = times[-1] if lint else None
            for (label, _), ours in zip(commands, times, strict=False):
                rows.append((label, count, ours, theirs, goal))
    print(f"median of {args.runs} runs; compose-lint {COMPOSE_LINT_VERSION}")
    print(f"{'command':<30} {'services':>8}  {'stackgen':>9}  {'compose-lint':>12}  {'ratio':>6}  goal")
    for label, count, ours, theirs, goal in rows:
        if theirs is None:
            print(f"{label:<30} {count:>8}  {ours:>8.3f}s  {'-':>12}  {'-':>6}")
            continue
        ratio = ours / theirs
        verdict = "met" if ratio <= goal else "MISSED"
        print(f"{label:<30} {count:>8}  {ours:>8.3f}s  {theirs:>11.3f}s  {ratio:>6.2f}  <= {goal:.2f} {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
