"""Write docs/report-hardened.png and docs/report-weak.png: the HTML report as headless Chromium draws it.

    make screenshots      (or: .venv/bin/python -m scripts.report_screenshots [OUTDIR])

The pages are written by `stackgen verify FILE --format html` and photographed by the helpers the
browser test uses (tests/chromium.py: same flags, no network), so the README shows what the test checks.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from stackgen.cli.verify import main
from tests import chromium

WIDTH = 1200
HEIGHTS = {"report-hardened": 900, "report-weak": 1250}  # the picture and the first findings


def write(outdir: Path) -> list[Path]:
    binary = chromium.find()
    if binary is None:
        raise SystemExit("no chromium: run scripts/ensure-chromium.sh")
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, compose in chromium.SCREENSHOTS.items():
            page = Path(tmp) / f"{name}.html"
            code = main(["verify", str(compose.relative_to(chromium.ROOT)), "--format", "html", "-o", str(page)])
            if code not in (0, 1):
                raise SystemExit(f"verify {compose} exited {code}")
            png = outdir / f"{name}.png"
            run = chromium.screenshot(binary, page, png, WIDTH, HEIGHTS[name])
            if chromium.page_requests(run.netlog):
                raise SystemExit(f"{name}: the page asked the network for something")
            info = chromium.read_png(png.read_bytes())
            print(f"{png}: {info.width}x{info.height}, {png.stat().st_size} bytes, {run.seconds:.1f}s")
            written.append(png)
    return written


if __name__ == "__main__":
    import os

    os.chdir(chromium.ROOT)  # paths in the page read `tests/corpus/...`, not this machine's checkout
    write(Path(sys.argv[1]) if len(sys.argv) > 1 else chromium.ROOT / "docs")
