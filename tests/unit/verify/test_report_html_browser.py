"""The HTML report in a real browser: headless Chromium draws it, loads nothing, and the DOM holds the picture.

Needs the `chromium` binary (scripts/ensure-chromium.sh, run by `make test`), no Docker engine.
Under CI=true a missing Chromium fails the test instead of skipping it (as a missing engine does
for the integration tests). The page is opened as a file:// URL with name resolution and proxying
both pointed at nothing; the net log must show no request made by the page.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from stackgen.cli.verify import main
from stackgen.findings import Severity
from stackgen.verify.html import render_html
from stackgen.verify.report import summarise
from tests import chromium
from tests.htmltree import parse
from tests.unit.verify.test_report_html import HOSTILE, hostile_topology

pytestmark = pytest.mark.browser

WIDTH, HEIGHT = 1400, 1800
BACKGROUND = chromium.rgb("#f6f8fa")
# Solid fills the page uses, each drawn large enough to leave exact pixels after anti-aliasing.
EDGE_BAND, NODE_RED_BAND, CERTBOT_BAND = chromium.rgb("#0969da"), chromium.rgb("#8f0000"), chromium.rgb("#1a7f37")
INTERNAL_FILL, KEY_FILL, ALL_INTERFACES_FILL = chromium.rgb("#ddf4ff"), chromium.rgb("#fff8c5"), chromium.rgb("#ffebe9")
CRITICAL_BADGE = chromium.rgb("#a40e26")


@pytest.fixture(scope="module")
def browser() -> str:
    return chromium.require()


def write_page(compose: Path, out: Path) -> Path:
    """The page as `stackgen verify FILE --format html -o OUT` writes it."""
    code = main(["verify", str(compose), "--format", "html", "-o", str(out)])
    assert code in (0, 1)
    return out


@pytest.mark.parametrize(
    "name, expected",
    [
        ("report-hardened", {EDGE_BAND: 400, NODE_RED_BAND: 400, CERTBOT_BAND: 400, INTERNAL_FILL: 5000, KEY_FILL: 5000, ALL_INTERFACES_FILL: 3000}),
        ("report-weak", {EDGE_BAND: 400, NODE_RED_BAND: 400, KEY_FILL: 5000, ALL_INTERFACES_FILL: 3000, CRITICAL_BADGE: 300}),
    ],
)
def test_screenshot_is_a_drawn_picture_and_nothing_was_fetched(browser, tmp_path, name, expected):
    page = write_page(chromium.SCREENSHOTS[name], tmp_path / f"{name}.html")
    png_path = tmp_path / f"{name}.png"
    run = chromium.screenshot(browser, page, png_path, WIDTH, HEIGHT)

    assert chromium.page_requests(run.netlog) == [], "the page asked the network for something"
    png = chromium.read_png(png_path.read_bytes())  # signature, chunk CRCs, IHDR, every row unfiltered
    assert (png.width, png.height) == (WIDTH, HEIGHT)
    counts = chromium.colours(png)
    assert len(counts) >= 64, f"only {len(counts)} colours: a blank or flat page"
    assert counts.get(BACKGROUND, 0) < 0.85 * WIDTH * HEIGHT, "mostly background: the picture is missing"
    missing = {colour.hex(): (counts.get(colour, 0), least) for colour, least in expected.items() if counts.get(colour, 0) < least}
    assert not missing, f"colours of drawn elements missing (found, wanted): {missing}"


def test_the_rendered_dom_holds_the_topology(browser, tmp_path):
    page = write_page(chromium.SCREENSHOTS["report-weak"], tmp_path / "weak.html")
    run = chromium.dump_dom(browser, page)
    assert chromium.page_requests(run.netlog) == []
    doc = parse(run.stdout)
    svg = doc.find("svg", "topology")
    assert {g.attrs["data-key"] for g in svg.find_all("g", "service")} == {"npm", "node-red"}
    assert [g.attrs["data-key"] for g in svg.find_all("g", "network")] == ["proxy"]
    assert len(svg.find_all("g", "store")) == 2 and len(svg.find_all("g", "port")) == 3
    assert len(svg.find_all("path", "link")) == 3 + 3 + 2  # ports, mounts, network attachments
    assert {a.attrs["href"][1:] for a in svg.find_all("a", "badge")} <= {s.attrs["id"] for s in doc.find_all("section", "group")}
    assert not doc.find_all("script")


def test_hostile_names_stay_text_in_the_browser(browser, tmp_path):
    topo, findings = hostile_topology()
    page = tmp_path / "hostile.html"
    page.write_text(render_html(topo, findings, summarise(findings, Severity.HIGH, [], 2), exit_code=1), encoding="utf-8")
    run = chromium.dump_dom(browser, page)
    doc = parse(run.stdout)
    assert not doc.find_all("script") and not doc.find_all("img"), "markup from names became elements"
    assert any(HOSTILE in node.text for node in doc.find_all("text", "name")) or HOSTILE in doc.find("svg", "topology").text
    assert chromium.page_requests(run.netlog) == []


def test_the_network_check_sees_a_page_that_fetches(browser, tmp_path):
    """The check above has teeth: a page that names an external image is caught (the fetch itself fails: no DNS)."""
    page = tmp_path / "fetches.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://stackgen-test.invalid/x.png"></body></html>')
    run = chromium.dump_dom(browser, page)
    assert chromium.page_requests(run.netlog) == ["http://stackgen-test.invalid/x.png"]
