#!/usr/bin/env python3
"""Benchmark: time from the engine's `unhealthy` event to the restart's start, supervisor vs a 5 s polling loop.

The baseline is what docker-autoheal does by default: every 5 s, list the
containers whose health is `unhealthy` (with its label) and restart them.
Both watch their own throwaway project in the same run; in each trial both
containers are made unhealthy at the same moment (their healthcheck tests a
file that the trial removes), and latency is read from the engine's own event
timestamps: `health_status: unhealthy` -> the restart's `kill`. Random pauses
between trials spread the trials over the poll phase. Goal: <= 1 s for the
supervisor.

Then the supervisor's footprint: CPU time and RSS of `stackgen supervise`
(a real process) idle for a minute, watching a real Caddy stack (pebble as the
CA, cert check and live verify included), unless --no-stack.

Run: `python -m bench.heal_latency [--trials N] [--idle SECONDS] [--no-stack]`.
Traffic: loopback and the benchmark's own containers only.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from stackgen import engine as engines
from tests.integration.supervisor_support import HealthProject, SupervisorProcess, wait_for

POLL_INTERVAL = 5.0  # docker-autoheal's AUTOHEAL_INTERVAL default
GOAL_SECONDS = 1.0
GOAL_RSS_MB = 60


def poller(engine, label: str, stop: threading.Event) -> None:
    """The autoheal baseline: poll every 5 s, restart whatever is unhealthy."""
    while not stop.wait(POLL_INTERVAL):
        for container in engine.containers.list(filters={"health": "unhealthy", "label": label}):
            container.restart(timeout=1)


def follow(engine, projects: list[str], marks: dict[str, list[tuple[str, int]]], stop: threading.Event) -> None:
    stream = engine.events(decode=True, filters={"type": "container", "event": ["health_status", "kill"]})
    stop_watch = threading.Thread(target=lambda: (stop.wait(), stream.close()), daemon=True)
    stop_watch.start()
    try:
        for event in stream:
            attributes = event["Actor"]["Attributes"]
            project = attributes.get("com.docker.compose.project")
            if project in projects:
                marks[project].append((event["Action"], event["timeNano"]))
    except Exception:  # noqa: BLE001 - closed at the end
        pass


def latencies(marks: list[tuple[str, int]]) -> list[float]:
    found, pending = [], None
    for action, nano in marks:
        if action == "health_status: unhealthy":
            pending = nano
        elif action == "kill" and pending is not None:
            found.append((nano - pending) / 1e9)
            pending = None
    return found


def heal_trials(engine, workdir: Path, trials: int) -> tuple[list[float], list[float]]:
    ours, theirs = HealthProject(engine, workdir, "sgbench-supervised"), HealthProject(engine, workdir, "sgbench-polled")
    ours.write_compose(["app"])
    theirs.write_compose(["app"])
    stop = threading.Event()
    marks = {ours.name: [], theirs.name: []}
    supervisor = None
    try:
        a, b = ours.run("app"), theirs.run("app")
        wait_for(lambda: ours.health("app") == "healthy" and theirs.health("app") == "healthy", 30, "healthy containers")
        supervisor = SupervisorProcess(ours.directory, ["--stop-timeout", "1", "--stable-after", "1s", "--crash-loop-restarts", "1000"])
        wait_for(lambda: supervisor.events("resynced"), 30, "the supervisor")
        threading.Thread(target=follow, args=(engine, list(marks), marks, stop), daemon=True).start()
        threading.Thread(target=poller, args=(engine, f"org.stackgen.test={theirs.name}", stop), daemon=True).start()
        time.sleep(random.uniform(0, POLL_INTERVAL))
        for n in range(trials):
            a.exec_run(["rm", "/tmp/ok"])
            b.exec_run(["rm", "/tmp/ok"])
            wait_for(lambda n=n: len(latencies(marks[ours.name])) > n and len(latencies(marks[theirs.name])) > n, 60, f"trial {n + 1}")
            wait_for(lambda: ours.health("app") == "healthy" and theirs.health("app") == "healthy", 30, "healthy again")
            time.sleep(1.2 + random.uniform(0, POLL_INTERVAL))
            print(f"  trial {n + 1}: supervisor {latencies(marks[ours.name])[n]:.3f} s, 5 s poll {latencies(marks[theirs.name])[n]:.3f} s",
                  flush=True)
    finally:
        stop.set()
        if supervisor is not None:
            supervisor.terminate()
        ours.cleanup()
        theirs.cleanup()
    return latencies(marks[ours.name])[:trials], latencies(marks[theirs.name])[:trials]


def footprint(engine, workdir: Path, idle: float, with_stack: bool) -> dict[str, float]:
    live = None
    try:
        if with_stack:
            from tests.integration.harness import start_stack

            live = start_stack(engine, workdir / "stack-run", "caddy")
            directory = live.directory
            args = ["--verify-interval", "15m"]
        else:
            project = HealthProject(engine, workdir, "sgbench-idle")
            project.write_compose(["app"])
            project.run("app")
            directory = project.directory
            args = []
        supervisor = SupervisorProcess(directory, args)
        pid = supervisor.process.pid
        wait_for(lambda: supervisor.events("resynced"), 30, "the supervisor")
        time.sleep(15)  # start-up jobs: certificate probe (+5 s) and live verify (+10 s)
        ticks = os.sysconf("SC_CLK_TCK")

        def cpu() -> float:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / ticks

        def rss_mb() -> tuple[float, float]:
            status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
            return int(status["VmRSS"].split()[0]) / 1024, int(status["VmHWM"].split()[0]) / 1024

        cpu0, t0 = cpu(), time.monotonic()
        samples = []
        while time.monotonic() - t0 < idle:
            time.sleep(5)
            samples.append(rss_mb()[0])
        used = cpu() - cpu0
        elapsed = time.monotonic() - t0
        peak = rss_mb()[1]
        supervisor.terminate()
        result = {"cpu_percent": 100 * used / elapsed, "cpu_seconds": used, "seconds": elapsed, "rss_mb": max(samples), "peak_rss_mb": peak}
        if with_stack:
            result.update(verify_child(directory))
        return result
    finally:
        if live is not None:
            from tests.integration.harness import stop_stack

            stop_stack(live)
        elif not with_stack:
            project.cleanup()


def verify_child(directory: Path) -> dict[str, float]:
    """The drift watch's child process (live verify, cheap probes): its wall time, CPU and peak RSS."""
    import subprocess

    from stackgen.supervise.drift import child_command

    started = time.monotonic()
    child = subprocess.Popen(child_command(directory, "cheap"), stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return {"verify_seconds": time.monotonic() - started, "verify_cpu": usage.ru_utime + usage.ru_stime,
            "verify_rss_mb": usage.ru_maxrss / 1024, "verify_ok": child.returncode == 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--idle", type=float, default=60.0)
    parser.add_argument("--no-stack", action="store_true", help="measure the footprint on a throwaway project, not a real stack")
    args = parser.parse_args()
    engine = engines.client()
    with tempfile.TemporaryDirectory(prefix="sgbench-") as tmp:
        workdir = Path(tmp)
        print(f"heal latency: {args.trials} trials, unhealthy event -> restart start (engine timestamps)")
        ours, theirs = heal_trials(engine, workdir, args.trials)
        mine, base = statistics.median(ours), statistics.median(theirs)
        print(f"supervisor: median {mine * 1000:.0f} ms, max {max(ours) * 1000:.0f} ms")
        print(f"5 s poll:   median {base * 1000:.0f} ms, max {max(theirs) * 1000:.0f} ms")
        print(f"ratio (poll / supervisor, medians): {base / mine:.0f}x; goal <= {GOAL_SECONDS:.0f} s: {'met' if max(ours) <= GOAL_SECONDS else 'MISSED'}")
        where = "a throwaway project" if args.no_stack else "a real Caddy stack (pebble CA)"
        print(f"footprint: stackgen supervise idle for {args.idle:.0f} s, watching {where}")
        usage = footprint(engine, workdir, args.idle, not args.no_stack)
        print(f"idle CPU {usage['cpu_percent']:.2f} % ({usage['cpu_seconds']:.2f} s CPU in {usage['seconds']:.0f} s), "
              f"RSS {usage['rss_mb']:.1f} MB (peak {usage['peak_rss_mb']:.1f} MB); goal <= {GOAL_RSS_MB} MB: "
              f"{'met' if usage['peak_rss_mb'] <= GOAL_RSS_MB else 'MISSED'}")
        if "verify_seconds" in usage:
            print(f"drift watch (child process, every --verify-interval): {usage['verify_seconds']:.1f} s, "
                  f"{usage['verify_cpu']:.2f} s CPU, peak RSS {usage['verify_rss_mb']:.0f} MB{'' if usage['verify_ok'] else ' (FAILED)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
