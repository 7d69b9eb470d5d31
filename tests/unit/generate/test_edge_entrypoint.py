"""The edge's entrypoint (edge/entrypoint.sh), run for real with a fake edge: no engine needed.

The rendered script runs under dash (Debian's /bin/sh) and under BusyBox ash (the official Alpine
images' /bin/sh) with BusyBox's applets first on PATH (awk, sed, cp, sleep, ...), as in those images.
Debian's busybox has no `cksum` applet (Alpine's has): that one comes from the host.

The fake `caddy`/`nginx`/`traefik` is a small Python program on PATH that records what it is asked
and every signal it gets, in a log file; a fake `wget` plays Traefik's ping entry point, answering
for the generation of the dynamic file currently installed. Only four lines of the script are
rewritten (CERT, KEY, STATE, CONF) so that it works in a temporary directory.
"""

from __future__ import annotations

import datetime
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from stackgen.generate.render import render
from tests.golden import golden_stack

GRACEFUL = {"caddy": "SIGTERM", "nginx": "SIGQUIT", "traefik": "SIGTERM"}
FAST = {"caddy": "SIGQUIT", "nginx": "SIGTERM", "traefik": "SIGKILL"}

FAKE_EDGE = """#!{python}
import os, signal, sys, time

name = os.path.basename(sys.argv[0])
args = sys.argv[1:]
env = os.environ


def record(line):
    with open(env["FAKE_LOG"], "a") as log:
        log.write(line + "\\n")


if (name == "caddy" and args[:1] == ["reload"]) or (name == "nginx" and ("-t" in args or "-s" in args)):
    record("reload " + " ".join(args))
    sys.exit(int(env.get("FAKE_RELOAD_STATUS", "0")))

graceful = {{"caddy": signal.SIGTERM, "nginx": signal.SIGQUIT, "traefik": signal.SIGTERM}}[name]


def on_signal(number, frame):
    record("signal " + signal.Signals(number).name)
    if number == graceful:
        if env.get("FAKE_IGNORE_GRACEFUL"):
            return
        time.sleep(float(env.get("FAKE_STOP_DELAY", "0")))
        record("exit")
        sys.exit(int(env.get("FAKE_EXIT_STATUS", "0")))
    record("exit")
    sys.exit(2)


for number in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP):
    signal.signal(number, on_signal)  # also undoes the SIG_IGN a non-interactive shell gives `cmd &`
record("start " + str(os.getpid()) + " " + " ".join(args))
end = time.monotonic() + float(env.get("FAKE_RUN_SECONDS", "60"))
while time.monotonic() < end:
    time.sleep(0.02)
record("exit by itself")
sys.exit(int(env.get("FAKE_SELF_EXIT_STATUS", "5")))
"""

# Traefik's loopback ping entry point: 200 for the generation of the dynamic file installed, unless "deaf".
FAKE_WGET = """#!{python}
import os, sys

url = sys.argv[-1]
generation = url.rsplit("/", 1)[-1]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("confirm " + generation + "\\n")
if os.path.exists(os.environ["FAKE_TRAEFIK_DEAF"]):
    sys.exit(1)
try:
    installed = open(os.path.join(os.environ["FAKE_STATE"], "dynamic", "dynamic.yml")).read()
except OSError:
    sys.exit(1)
sys.exit(0 if "/stackgen/generation/" + generation + "`" in installed else 4)
"""

SHELLS = ["dash", "busybox"]


def _shell_available(shell: str) -> bool:
    return shutil.which("dash" if shell == "dash" else "busybox") is not None


@pytest.fixture(params=SHELLS)
def shell(request) -> str:
    if not _shell_available(request.param):
        pytest.skip(f"{request.param} is not installed (apt-get install {request.param})")
    return request.param


# --- certificates --------------------------------------------------------------------------


def make_key(kind: str = "ec"):
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    return ec.generate_private_key(ec.SECP256R1()) if kind == "ec" else rsa.generate_private_key(65537, 2048)


def key_pem(key, fmt: str = "pkcs8") -> bytes:
    from cryptography.hazmat.primitives import serialization as s

    form = {"pkcs8": s.PrivateFormat.PKCS8, "traditional": s.PrivateFormat.TraditionalOpenSSL}[fmt]
    return key.private_bytes(s.Encoding.PEM, form, s.NoEncryption())


def cert_pem(key, name: str = "nodered.example.org") -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


# --- the script under test -------------------------------------------------------------------


def rendered_entrypoint(edge: str, mode: str = "files") -> tuple[str, dict[str, bytes]]:
    files = {f.path: f.content for f in render(golden_stack(edge, mode))}
    edge_files = {path.removeprefix("edge/"): content for path, content in files.items() if path.startswith("edge/")}
    return files["edge/entrypoint.sh"].decode(), edge_files


def _rewrite(script: str, name: str, value: Path) -> str:
    pattern = re.compile(rf"^{name}=.*$", re.M)
    assert len(pattern.findall(script)) == 1, f"{name}= must be assigned once in the entrypoint"
    return pattern.sub(f"{name}={value}", script)


@dataclass
class Edge:
    """One run of the entrypoint with a fake edge."""

    edge: str
    shell: str
    root: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen | None = None

    @property
    def cert(self) -> Path:
        return self.root / "certs" / "fullchain.pem"

    @property
    def key(self) -> Path:
        return self.root / "certs" / "privkey.pem"

    @property
    def state(self) -> Path:
        return self.root / "state"

    @property
    def log(self) -> Path:
        return self.root / "fake.log"

    @property
    def deaf(self) -> Path:
        return self.root / "traefik-is-deaf"

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def signals(self) -> list[str]:
        return [line.split()[1] for line in self.lines() if line.startswith("signal ")]

    def stderr(self) -> str:
        return (self.root / "stderr").read_text()

    def write_pair(self, cert: bytes, key: bytes) -> None:
        self.cert.parent.mkdir(exist_ok=True)
        self.key.write_bytes(key)
        self.cert.write_bytes(cert)

    def start(self, mode: str = "files", **env: str) -> Edge:
        script, edge_files = rendered_entrypoint(self.edge, mode)
        conf = self.root / "conf"
        conf.mkdir()
        for name, content in edge_files.items():
            (conf / name).write_bytes(content)
        for name, value in (("CERT", self.cert), ("KEY", self.key), ("STATE", self.state), ("CONF", conf)):
            script = _rewrite(script, name, value)
        (self.root / "entrypoint.sh").write_text(script)
        fakes = self.root / "fakebin"
        fakes.mkdir()
        for name, text in ((self.edge, FAKE_EDGE), ("wget", FAKE_WGET)):
            (fakes / name).write_text(text.format(python=sys.executable))
            (fakes / name).chmod(0o755)
        path = [str(fakes)]
        if self.shell == "busybox":
            applets = self.root / "busybox-bin"
            applets.mkdir()
            busybox = shutil.which("busybox")
            listed = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
            for applet in listed:
                (applets / applet).symlink_to(busybox)
            path.append(str(applets))
        path.append(os.environ.get("PATH", "/usr/bin:/bin"))
        self.env = {
            "PATH": os.pathsep.join(path), "HOME": str(self.root), "FAKE_LOG": str(self.log), "FAKE_STATE": str(self.state),
            "FAKE_TRAEFIK_DEAF": str(self.deaf), "STACKGEN_CERT_POLL_SECONDS": "0.2", **env,
        }
        command = ["dash"] if self.shell == "dash" else ["busybox", "sh"]
        with open(self.root / "stderr", "wb") as err:
            self.proc = subprocess.Popen([*command, str(self.root / "entrypoint.sh")], env=self.env, stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err, cwd=self.root)
        self.wait_for(lambda: any(line.startswith("start ") for line in self.lines()), "the edge started")
        return self

    def wait_for(self, condition, what: str, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            assert self.proc is None or self.proc.poll() is None or what == "exit", f"entrypoint exited early:\n{self.stderr()}"
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for: {what}\nfake log: {self.lines()}\nstderr:\n{self.stderr()}")

    def stop(self, sig: signal.Signals, timeout: float = 5.0) -> tuple[int, float]:
        assert self.proc is not None
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=timeout)
        return code, time.monotonic() - started

    def installed(self) -> str:
        return (self.state / "dynamic" / "dynamic.yml").read_text()

    def generation(self) -> str:
        match = re.search(r"/stackgen/generation/([^`]+)`", self.installed())
        assert match, self.installed()
        return match.group(1)

    def kill(self) -> None:
        """The script, then the fake edge it started (by the pid the fake recorded), if still running."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for line in self.lines():
            if line.startswith("start "):
                try:
                    os.kill(int(line.split()[1]), signal.SIGKILL)
                except ProcessLookupError:
                    pass


@pytest.fixture
def run(tmp_path, shell):
    """Factory: run(edge) -> Edge (not started); every run is killed at the end of the test."""
    runs: list[Edge] = []

    def make(edge: str) -> Edge:
        root = tmp_path / f"{edge}-{len(runs)}"
        root.mkdir()
        found = Edge(edge, shell, root)
        runs.append(found)
        return found

    yield make
    for each in runs:
        each.kill()


def with_pair(edge: Edge, key=None) -> Edge:
    key = key or make_key()
    edge.write_pair(cert_pem(key), key_pem(key))
    return edge


# --- 1. stop signals ---------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGQUIT], ids=lambda s: s.name)
@pytest.mark.parametrize("edge", ["caddy", "nginx", "traefik"])
def test_each_stop_signal_becomes_the_edges_graceful_stop(run, edge, sig):
    """TERM, INT or QUIT (whatever the image's STOPSIGNAL is): the edge gets its own graceful stop,
    the script exits at once with the edge's exit status."""
    live = with_pair(run(edge)).start(FAKE_EXIT_STATUS="3")
    code, elapsed = live.stop(sig)
    assert live.signals() == [GRACEFUL[edge]], live.lines()
    assert code == 3, f"the edge's exit status is the container's\n{live.stderr()}"
    assert elapsed < 1.0, f"took {elapsed:.2f}s"
    assert f"{sig.name.removeprefix('SIG')} received: graceful stop of {edge}" in live.stderr()


@pytest.mark.parametrize("edge", ["caddy", "nginx"])
def test_no_poll_or_reload_once_a_stop_began(run, edge):
    """The edge takes a while to finish its in-flight requests; meanwhile the certificate changes.
    The script must not reload (or keep polling) a stopping edge."""
    live = with_pair(run(edge)).start(FAKE_STOP_DELAY="1.2")
    started = time.monotonic()
    live.proc.send_signal(signal.SIGTERM)
    live.wait_for(lambda: live.signals(), "the stop signal reached the edge")
    with_pair(live)  # a renewal lands while the edge is stopping
    code = live.proc.wait(timeout=5)
    assert code == 0
    assert 1.0 < time.monotonic() - started < 2.5
    assert not [line for line in live.lines() if line.startswith("reload")], live.lines()
    assert live.signals() == [GRACEFUL[edge]]


@pytest.mark.parametrize("edge", ["caddy", "nginx", "traefik"])
def test_an_edge_that_outlives_the_grace_period_gets_its_fast_stop(run, edge):
    live = with_pair(run(edge)).start(FAKE_IGNORE_GRACEFUL="1", STACKGEN_STOP_GRACE_SECONDS="1")
    code, elapsed = live.stop(signal.SIGTERM)
    assert 0.9 < elapsed < 2.5, elapsed
    if edge == "traefik":
        assert code == 128 + signal.SIGKILL, "SIGKILL: the status says so"
        assert live.signals() == ["SIGTERM"]
    else:
        assert code == 2
        assert live.signals() == [GRACEFUL[edge], FAST[edge]]
    assert f"still running 1s after the stop signal: fast stop (SIG{FAST[edge].removeprefix('SIG')})" in live.stderr()


def test_a_second_stop_signal_forces_the_fast_stop(run):
    live = with_pair(run("nginx")).start(FAKE_IGNORE_GRACEFUL="1", STACKGEN_STOP_GRACE_SECONDS="30")
    live.proc.send_signal(signal.SIGQUIT)
    live.wait_for(lambda: live.signals(), "the graceful stop reached nginx")
    code, elapsed = live.stop(signal.SIGTERM)
    assert elapsed < 1.0 and code == 2
    assert live.signals() == ["SIGQUIT", "SIGTERM"]


@pytest.mark.parametrize("edge", ["caddy", "traefik"])
def test_an_edge_exiting_by_itself_ends_the_container_with_its_status(run, edge):
    live = with_pair(run(edge)).start(FAKE_RUN_SECONDS="0.5", FAKE_SELF_EXIT_STATUS="5")
    assert live.proc.wait(timeout=3) == 5
    assert live.signals() == []


# --- 2. the key is fingerprinted too ------------------------------------------------------------


@pytest.mark.parametrize("edge", ["caddy", "nginx", "traefik"])
def test_a_key_only_change_reloads(run, edge):
    """Same certificate, the key file rewritten (here: the same key in another PEM form, so the pair
    stays valid for the Traefik checks): a change the edge must pick up."""
    key = make_key()
    live = run(edge)
    live.write_pair(cert_pem(key), key_pem(key, "pkcs8"))
    live.start()
    before = live.generation() if edge == "traefik" else None
    live.key.write_bytes(key_pem(key, "traditional"))
    if edge == "traefik":
        live.wait_for(lambda: live.generation() != before, "a new dynamic file")
        live.wait_for(lambda: "certificate changed: reloaded" in live.stderr(), "the reload confirmed")
        assert (live.state / "tls" / f"{live.generation()}.key").read_bytes() == key_pem(key, "traditional")
    else:
        live.wait_for(lambda: any(line.startswith("reload") for line in live.lines()), "a reload")
        live.wait_for(lambda: "certificate changed: reloaded" in live.stderr(), "the reload logged")


@pytest.mark.parametrize("edge", ["caddy", "nginx"])
def test_a_renewal_written_file_by_file_is_one_reload_of_the_complete_pair(run, edge):
    """certbot replaces the certificate, then the key, within one poll interval: a poll may see the
    half-replaced pair (new certificate, old key); the edge must not reload on it, and reloads once."""
    old_key, new_key = make_key(), make_key()
    live = run(edge)
    live.write_pair(cert_pem(old_key), key_pem(old_key))
    live.start(STACKGEN_CERT_POLL_SECONDS="1")
    time.sleep(0.5)
    live.cert.write_bytes(cert_pem(new_key))  # the key follows a moment later
    time.sleep(0.6)
    live.key.write_bytes(key_pem(new_key))
    live.wait_for(lambda: "certificate changed: reloaded" in live.stderr(), "the reload")
    time.sleep(1.0)
    reloads = [line for line in live.lines() if line.startswith("reload") and "-t" not in line.split()]  # nginx: -t, then -s reload
    assert len(reloads) == 1, reloads


def test_a_failed_reload_is_retried_at_the_next_poll(run):
    live = run("caddy")
    live.start(FAKE_RELOAD_STATUS="1")
    with_pair(live)
    live.wait_for(lambda: len([line for line in live.lines() if line.startswith("reload")]) >= 2, "a reload retried")
    assert "reload failed: still serving the previous configuration; retrying" in live.stderr()


# --- 3. Traefik: failures detected, not assumed away ----------------------------------------------


def test_traefik_starts_on_the_checked_copy_of_the_pair(run):
    key = make_key()
    live = with_pair(run("traefik"), key).start()
    generation = live.generation()
    installed = live.installed()
    assert "@GENERATION@" not in installed
    # The dynamic file names the copies at STATE=/tmp/stackgen (here STATE is a temporary directory).
    assert f"/tmp/stackgen/tls/{generation}.crt" in installed and f"/tmp/stackgen/tls/{generation}.key" in installed
    assert (live.state / "tls" / f"{generation}.crt").read_bytes() == live.cert.read_bytes()
    assert (live.state / "tls" / f"{generation}.key").read_bytes() == live.key.read_bytes()
    assert oct((live.state / "tls" / f"{generation}.key").stat().st_mode & 0o777) == "0o600"


def test_traefik_rejects_a_key_that_does_not_match_then_takes_the_right_one(run):
    live = run("traefik").start()
    assert live.generation() == "bootstrap"
    first, second = make_key(), make_key("rsa")
    live.write_pair(cert_pem(first), key_pem(second))  # a renewal half done: new certificate, other key
    live.wait_for(lambda: "does not match certificate" in live.stderr(), "the mismatch detected")
    time.sleep(0.5)
    assert live.generation() == "bootstrap", "a mismatched pair never reaches traefik"
    live.key.write_bytes(key_pem(first))
    live.wait_for(lambda: live.generation() != "bootstrap", "the good pair installed")
    live.wait_for(lambda: "certificate changed: reloaded" in live.stderr(), "the reload confirmed")


def test_traefik_rejects_a_half_written_certificate(run):
    key = make_key()
    pem = cert_pem(key)
    body = pem.decode().splitlines()
    truncated = "\n".join(body[:6] + body[-1:]) + "\n"  # BEGIN, some lines, END: valid PEM, short DER
    live = run("traefik").start()
    live.write_pair(truncated.encode(), key_pem(key))
    live.wait_for(lambda: "truncated or malformed certificate" in live.stderr(), "the truncation detected")
    assert live.generation() == "bootstrap"
    live.cert.write_bytes(pem[: len(pem) // 2])  # no END line at all
    live.wait_for(lambda: "incomplete PEM" in live.stderr(), "the missing END line detected")
    assert live.generation() == "bootstrap"
    live.cert.write_bytes(pem)
    live.wait_for(lambda: live.generation() != "bootstrap", "the complete pair installed")


def test_traefik_not_loading_the_file_rolls_back_and_retries(run):
    live = run("traefik")
    live.deaf.touch()
    live.start(STACKGEN_TRAEFIK_CONFIRM_SECONDS="1")
    with_pair(live)
    live.wait_for(lambda: "traefik did not load generation" in live.stderr(), "the failed load detected")
    live.wait_for(lambda: live.generation() == "bootstrap", "the previous file put back")
    live.wait_for(lambda: live.stderr().count("traefik did not load generation") >= 2, "a retry at the next poll")
    assert "certificate changed: reloaded" not in live.stderr()
    live.deaf.unlink()
    live.wait_for(lambda: "certificate changed: reloaded" in live.stderr(), "the load confirmed on a retry")
    assert live.generation() != "bootstrap"


def test_traefik_each_change_is_a_new_file_and_old_copies_go(run):
    live = with_pair(run("traefik")).start()
    first = live.generation()
    with_pair(live)
    live.wait_for(lambda: live.generation() != first, "a new generation")
    live.wait_for(lambda: "certificate changed: reloaded" in live.stderr(), "the reload confirmed")
    second = live.generation()
    live.wait_for(lambda: sorted(p.name for p in (live.state / "tls").iterdir()) == [f"{second}.crt", f"{second}.key"], "the old copies pruned")


def test_traefik_edge_acme_installs_its_dynamic_file(run):
    live = run("traefik").start(mode="edge-acme")
    assert live.generation() == "acme"
    assert "@GENERATION@" not in live.installed()
    code, _ = live.stop(signal.SIGTERM)
    assert code == 0 and live.signals() == ["SIGTERM"]


# --- the DER reader itself, under every awk we may meet ------------------------------------------


def pem_public_awk() -> str:
    script, _ = rendered_entrypoint("traefik")
    match = re.search(r"^PEM_PUBLIC_AWK='(.*?)'$", script, re.M | re.S)
    assert match
    return match.group(1)


AWKS = [["busybox", "awk"], ["awk"]]  # BusyBox: the official images; awk: the host's (mawk or gawk)


@pytest.fixture(params=AWKS, ids=lambda a: a[0])
def awk(request) -> list[str]:
    if not shutil.which(request.param[0]):
        pytest.skip(f"{request.param[0]} not installed")
    return request.param


def public_half(awk: list[str], want: str, data: bytes, tmp_path: Path) -> str:
    path = tmp_path / "pem"
    path.write_bytes(data)
    result = subprocess.run([*awk, "-v", f"want={want}", pem_public_awk(), str(path)], capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.mark.parametrize("kind", ["ec", "rsa", "ec384"])
@pytest.mark.parametrize("fmt", ["pkcs8", "traditional"])
def test_pem_public_halves_of_a_pair_agree(awk, tmp_path, kind, fmt):
    from cryptography.hazmat.primitives.asymmetric import ec

    def new_key():
        return ec.generate_private_key(ec.SECP384R1()) if kind == "ec384" else make_key(kind)

    key = new_key()
    certificate = public_half(awk, "CERTIFICATE", cert_pem(key) + cert_pem(make_key()), tmp_path)  # a chain: the leaf counts
    assert certificate.split()[0] == ("rsa" if kind == "rsa" else "ec")
    assert public_half(awk, "KEY", key_pem(key, fmt), tmp_path) == certificate
    assert public_half(awk, "KEY", key_pem(new_key(), fmt), tmp_path) != certificate, "another key of the same type"


def test_pem_reader_refuses_what_traefik_could_not_load(awk, tmp_path):
    from cryptography.hazmat.primitives import serialization as s
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = make_key()
    encrypted = key.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.BestAvailableEncryption(b"pw"))
    assert public_half(awk, "KEY", encrypted, tmp_path) == "error encrypted key"
    assert public_half(awk, "KEY", b"", tmp_path).startswith("error no KEY")
    assert public_half(awk, "CERTIFICATE", key_pem(key), tmp_path).startswith("error no CERTIFICATE")
    pem = cert_pem(key)
    assert public_half(awk, "CERTIFICATE", pem[:-30], tmp_path).startswith("error incomplete PEM")
    lines = pem.decode().splitlines()
    assert public_half(awk, "CERTIFICATE", ("\n".join(lines[:5] + lines[-1:]) + "\n").encode(), tmp_path) == "error truncated or malformed certificate"
    crlf = pem.replace(b"\n", b"\r\n")
    assert public_half(awk, "CERTIFICATE", crlf, tmp_path) == public_half(awk, "CERTIFICATE", pem, tmp_path)
    edwards = ed25519.Ed25519PrivateKey.generate()
    assert public_half(awk, "KEY", edwards.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()), tmp_path).startswith("unknown")
