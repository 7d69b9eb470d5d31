"""Headless Chromium for the HTML report: screenshots, the rendered DOM, and what the page tried to load.

Shared by `tests/unit/verify/test_report_html_browser.py` (checks) and `scripts/report_screenshots.py`
(writes docs/report-*.png), so the README's pictures come from the code path the test checks.

Chromium must never reach the network: the page is a file:// URL with a CSP that allows nothing
external, and on top of that every host name resolves to nothing (`--host-resolver-rules`) and
every proxied request goes to a closed local port. Chromium's own background services still *try*
(update checks, account look-ups); the net log shows them with initiator "not an origin", while a
request made by the page carries the page's origin ("null" for file://) — that is what
`page_requests` reports.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import tempfile
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "corpus"
# The README's screenshots: name -> compose file (a hardened stack, and a weak one with a key store and a shared network).
SCREENSHOTS = {
    "report-hardened": ROOT / "compose" / "caddy" / "compose.yaml",  # the reference stack `stackgen init` writes
    "report-weak": CORPUS / "npm-shared-certs.compose.yaml",
}

FLAGS = (
    "--headless",
    "--no-sandbox",  # as root in a container there is no user namespace for the sandbox
    "--disable-gpu",
    # --no-sandbox leaves the GPU process's own sandbox on; on some kernels (this CI machine's) it
    # aborts ("sandbox_linux.cc: Check failed: Permission denied") and takes Chromium with it.
    "--disable-gpu-sandbox",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",  # one CSS pixel, one PNG pixel: the PNG is --window-size
    # Capture only once the page is laid out and painted: without these, a busy machine now and
    # then got a screenshot whose lower part was still blank.
    "--run-all-compositor-stages-before-draw",
    "--virtual-time-budget=5000",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-extensions",
    "--disable-breakpad",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--metrics-recording-only",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no name resolves: nothing can be fetched by name
    "--proxy-server=127.0.0.1:9",  # and anything else goes to a closed port
)


def find() -> str | None:
    """The Chromium binary: $STACKGEN_CHROMIUM, else `chromium` (Debian) or `chromium-browser` on PATH."""
    wanted = os.environ.get("STACKGEN_CHROMIUM")
    if wanted:
        return shutil.which(wanted)
    return shutil.which("chromium") or shutil.which("chromium-browser")


def require() -> str:
    """The binary, or (as tests/integration/conftest.py does for the engine) a failure under CI=true, else a skip."""
    binary = find()
    if binary is None:
        reason = "no headless Chromium (`chromium`); install it with scripts/ensure-chromium.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return binary


@dataclass
class Run:
    """What one Chromium run left: stdout (the DOM, with --dump-dom), the net log's events, the time it took."""

    stdout: str
    netlog: dict
    seconds: float


def run(binary: str, page: Path, *args: str, timeout: float = 60, attempts: int = 2) -> Run:
    """Chromium on `page` (a local file) with a throwaway profile and a net log.

    A run that overruns `timeout` is tried once more with a fresh profile: now and then headless Chromium
    never ends a --virtual-time-budget run (seen once in several hundred runs here, the page a 1.5 s job);
    a second hang fails the test."""
    for attempt in range(1, attempts + 1):
        with tempfile.TemporaryDirectory(prefix="stackgen-chromium-") as tmp:
            log = Path(tmp) / "netlog.json"
            command = [binary, *FLAGS, f"--user-data-dir={tmp}/profile", f"--log-net-log={log}", *args, page.resolve().as_uri()]
            start = time.monotonic()
            try:
                done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env={**os.environ, "HOME": tmp})
            except subprocess.TimeoutExpired:
                if attempt == attempts:
                    raise
                continue
            seconds = time.monotonic() - start
            assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
            netlog = json.loads(log.read_text()) if log.exists() else {"constants": {"logEventTypes": {}}, "events": []}
        return Run(done.stdout, netlog, seconds)
    raise AssertionError("unreachable")


def site_flags(host: str) -> list[str]:
    """FLAGS for a page of one of our own test stacks: `host` resolves to loopback (where the stack's edge
    publishes), every other name still to nothing; no proxy; real time (no virtual-time budget: the page's
    own requests and websocket decide when it is ready, see `load_site`)."""
    keep = [f for f in FLAGS if not f.startswith(("--host-resolver-rules=", "--proxy-server=", "--virtual-time-budget="))]
    return [*keep, f"--host-resolver-rules=MAP {host} 127.0.0.1, MAP * ~NOTFOUND", "--no-proxy-server",
            "--ignore-certificate-errors", "--window-size=1400,1000"]


@dataclass
class SiteRun:
    """One page of a test stack: the DOM once `ready` held (or the time ran out), what the page logged, and the
    Content-Security-Policy violations it raised (`securitypolicyviolation` events: directive and sample)."""

    dom: str
    console: list[str]
    violations: list[dict]
    ready: bool


# Runs in every document before the page's own scripts (DevTools-injected: no policy applies to it).
_WATCH_VIOLATIONS = ("window.__stackgenViolations = [];"
                     "document.addEventListener('securitypolicyviolation', function (e) {"
                     " window.__stackgenViolations.push({directive: e.violatedDirective, sample: e.sample,"
                     " source: e.sourceFile + ':' + e.lineNumber, blocked: e.blockedURI}); });")


class _DevTools:
    """The DevTools protocol over --remote-debugging-pipe (fd 3 in, fd 4 out; NUL-separated JSON): no port opened."""

    def __init__(self, binary: str, flags: list[str], profile: str) -> None:
        import select  # noqa: F401 - used by read()

        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        def place_fds() -> None:
            # Via fresh copies: a pipe end may already be fd 3 or 4, and dup2 onto itself would leave it close-on-exec.
            reading, writing = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(reading, 3)
            os.dup2(writing, 4)

        self.process = subprocess.Popen([binary, *flags, f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        # close_fds would run after place_fds and close 3 and 4 again; Python's
                                        # own descriptors are not inheritable anyway.
                                        close_fds=False, preexec_fn=place_fds, env={**os.environ, "HOME": profile})
        os.close(to_child_r)
        os.close(from_child_w)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_child, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            for reply in self.read(deadline - time.monotonic()):
                if reply.get("id") == self._next_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
            if time.monotonic() > deadline:
                raise TimeoutError(method)

    def read(self, timeout: float) -> list[dict]:
        import select

        ready, _, _ = select.select([self._from_child], [], [], max(0.0, timeout))
        if not ready:
            return []
        chunk = os.read(self._from_child, 1 << 20)
        if not chunk:
            raise EOFError("chromium closed the DevTools pipe")
        self._buffer += chunk
        *messages, self._buffer = self._buffer.split(b"\0")
        parsed = [json.loads(m) for m in messages if m]
        self.events += [m for m in parsed if "method" in m]
        return [m for m in parsed if "id" in m]

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, RuntimeError, TimeoutError, EOFError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        os.close(self._to_child)
        os.close(self._from_child)


def load_site(binary: str, url: str, host: str, ready: str = "true", seconds: float = 60) -> SiteRun:
    """Chromium on `url` (https, on a stack this test started) until the JavaScript expression `ready` is true
    (polled in real time, up to `seconds`), through the DevTools protocol on a pipe."""
    with tempfile.TemporaryDirectory(prefix="stackgen-chromium-") as tmp:
        tools = _DevTools(binary, site_flags(host), f"{tmp}/profile")
        try:
            target = next(t for t in tools.send("Target.getTargets")["targetInfos"] if t["type"] == "page")
            session = tools.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                tools.send(f"{domain}.enable", session=session)
            tools.send("Page.addScriptToEvaluateOnNewDocument", {"source": _WATCH_VIOLATIONS}, session=session)

            def evaluate(expression: str):
                result = tools.send("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=session)
                return result.get("result", {}).get("value")

            def network_changed() -> bool:
                return any("ERR_NETWORK_CHANGED" in text for text in _console(tools.events))

            for _attempt in range(3):
                # Chromium aborts requests in flight when the host's interfaces change (ERR_NETWORK_CHANGED), as they
                # do whenever the engine adds or removes a network: then the page is loaded again.
                tools.events.clear()
                tools.send("Page.navigate", {"url": url}, session=session)
                deadline, done = time.monotonic() + seconds, False
                while time.monotonic() < deadline and not done:
                    tools.read(0.5)
                    try:
                        done = bool(evaluate(f"document.readyState === 'complete' && !!({ready})"))
                    except RuntimeError:
                        done = False  # the page is navigating
                    if not done and network_changed():
                        break
                if done or not network_changed():
                    break
            time.sleep(1)  # let late messages arrive (a violation is reported asynchronously)
            tools.read(0.5)
            dom = evaluate("document.documentElement.outerHTML") or ""
            violations = evaluate("window.__stackgenViolations || []") or []
        finally:
            tools.close()
    return SiteRun(dom, _console(tools.events), violations, done)


def _console(events: list[dict]) -> list[str]:
    """The page's console: console.* calls and the browser's own messages (failed loads, policy reports)."""
    lines = [" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"].get("args", []))
             for e in events if e["method"] == "Runtime.consoleAPICalled"]
    return lines + [e["params"]["entry"]["text"] for e in events if e["method"] == "Log.entryAdded"]


def screenshot(binary: str, page: Path, png: Path, width: int, height: int) -> Run:
    """`page` rendered at `width` x `height` CSS pixels into `png`."""
    png.parent.mkdir(parents=True, exist_ok=True)
    return run(binary, page, f"--screenshot={png.resolve()}", f"--window-size={width},{height}")


def dump_dom(binary: str, page: Path) -> Run:
    """The DOM after the page has loaded, serialised (what the browser built, not what we wrote)."""
    return run(binary, page, "--dump-dom", "--window-size=1400,1800")


def page_requests(netlog: dict) -> list[str]:
    """URLs the *page* asked the network stack for (the browser's own background requests left out)."""
    names = {value: key for key, value in netlog.get("constants", {}).get("logEventTypes", {}).items()}
    found = []
    for event in netlog.get("events", []):
        params = event.get("params") or {}
        started = names.get(event.get("type")) == "URL_REQUEST_START_JOB" and "url" in params
        if started and params.get("initiator") != "not an origin":
            found.append(params["url"])
    return found


# --- PNG, read with the standard library -----------------------------------------------------


@dataclass
class Png:
    width: int
    height: int
    bit_depth: int
    color_type: int
    rows: list[bytes]  # unfiltered scanlines
    channels: int


_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


def read_png(data: bytes) -> Png:
    """Check the signature and the chunk CRCs, read IHDR, inflate IDAT and undo the row filters (8-bit, not interlaced)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    pos, header, idat = 8, None, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in chunk {kind!r}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    assert header is not None, "no IHDR chunk"
    width, height, depth, color, _, _, interlace = header
    assert depth == 8 and color in _CHANNELS and interlace == 0, f"unsupported PNG layout {header}"
    channels = _CHANNELS[color]
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    assert len(raw) == height * (stride + 1), "IDAT does not hold width x height pixels"
    rows, previous = [], bytes(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)]
        row = _unfilter(kind, line, previous, channels)
        rows.append(row)
        previous = row
    return Png(width, height, depth, color, rows, channels)


def _unfilter(kind: int, line: bytes, up: bytes, bpp: int) -> bytes:
    if kind == 0:
        return bytes(line)
    if kind == 2:  # Up, for whole rows at once: bytewise sums without carries between bytes
        n = len(line)
        a, b = int.from_bytes(line, "big"), int.from_bytes(up, "big")
        low, high = int.from_bytes(b"\x7f" * n, "big"), int.from_bytes(b"\x80" * n, "big")
        return (((a & low) + (b & low)) ^ ((a ^ b) & high)).to_bytes(n, "big")
    out = bytearray(line)
    if kind == 1:  # Sub
        for i in range(bpp, len(out)):
            out[i] = (out[i] + out[i - bpp]) & 0xFF
    elif kind == 3:  # Average
        for i in range(len(out)):
            left = out[i - bpp] if i >= bpp else 0
            out[i] = (out[i] + ((left + up[i]) >> 1)) & 0xFF
    elif kind == 4:  # Paeth
        for i in range(len(out)):
            a = out[i - bpp] if i >= bpp else 0
            b = up[i]
            c = up[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            out[i] = (out[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    else:
        raise AssertionError(f"unknown PNG row filter {kind}")
    return bytes(out)


def colours(png: Png, rows: range | None = None) -> dict[bytes, int]:
    """Pixel counts per colour (RGB; alpha dropped) over `rows` (default: all)."""
    counts: dict[bytes, int] = {}
    step = png.channels
    for y in rows or range(png.height):
        row = png.rows[y]
        for x in range(0, len(row), step):
            pixel = row[x : x + 3] if step >= 3 else row[x : x + 1] * 3
            counts[pixel] = counts.get(pixel, 0) + 1
    return counts


def rgb(hex_colour: str) -> bytes:
    """`#8f0000` -> b'\\x8f\\x00\\x00'."""
    return bytes.fromhex(hex_colour.lstrip("#"))
