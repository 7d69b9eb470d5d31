"""`stackgen verify --format html`: one self-contained page with the topology drawn and the findings on it.

Why a page and not only text: the security model is a picture (who publishes what, which network
is internal, who mounts the key store how), and a finding is easiest to understand where it
sits in that picture. The page is for a person to open from a CI artifact or a mail, offline, so:

* **self-contained**: inline CSS and inline SVG, no script at all, no fonts, images or styles
  fetched from anywhere; a Content-Security-Policy (`default-src 'none'`) makes the browser
  enforce that, so even a mistake here could not load or run anything;
* **escaped**: every string from the input (service, network and volume names, images, paths,
  messages, which quote them) goes through `html.escape` exactly once, in `svg.escape` (`_e` here);
  nothing from the input becomes an element id or a URL (ids are counters);
* **deterministic**: same input, same bytes (no timestamps), so a page can be diffed and tested.

Built with plain string assembly rather than a Jinja2 template: most of the work is geometry
(where each box and line goes, `stackgen.verify.svg`), which is Python either way, and `stackgen
verify` stays fast (jinja2 costs it ~25 ms of imports). Which finding goes on which element is
decided in `stackgen.verify.elements`, shared with the Mermaid renderer. This module is the page
around the picture: sections, the findings by element, the live matrix, the CSS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from stackgen.findings import Finding
from stackgen.topology import Role, Topology
from stackgen.verify.elements import STACK, Element, Store, placed, stores, worst
from stackgen.verify.report import Summary
from stackgen.verify.svg import OTHER_COLOR, ROLE_COLOR, ROLE_LEGEND, ROLE_ORDER, Ids, topology_svg
from stackgen.verify.svg import escape as _e

__all__ = ["Section", "render_html", "render_sections", "topology_svg"]


class MatrixCell(Protocol):
    """One cell of `verify --live`'s reachability matrix (`stackgen.live.checks.Reach`)."""

    vantage: str
    service: str
    address: str
    port: int
    expected: str | None
    observed: str
    via: str

    @property
    def ok(self) -> bool: ...


class ProbeCheck(Protocol):
    """One probe outcome that is not a matrix cell (`stackgen.live.checks.Check`)."""

    name: str
    ok: bool
    detail: str


@dataclass
class Section:
    """One stack on the page: a static verify, a live one (with its matrix), or a file that could not be read."""

    title: str
    topology: Topology | None = None
    findings: Sequence[Finding] = ()
    summary: Summary | None = None
    exit_code: int | None = None
    matrix: Sequence[MatrixCell] | None = None  # None: not a live run
    checks: Sequence[ProbeCheck] = ()
    seconds: float | None = None
    error: str | None = None


# --- the page --------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font: 14px/1.45 "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328; background: #f6f8fa; margin: 0; }
main { max-width: 1240px; margin: 0 auto; padding: 20px 28px 60px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 19px; margin: 28px 0 8px; border-bottom: 1px solid #d0d7de; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 18px 0 6px; }
.meta { color: #57606a; margin: 2px 0; word-break: break-all; }
.verdict { display: inline-block; font-weight: bold; color: #fff; border-radius: 6px; padding: 2px 10px; margin-right: 8px; }
.verdict.pass { background: #1a7f37; } .verdict.fail { background: #d1242f; } .verdict.error { background: #6e7781; }
.picture { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 8px; overflow-x: auto; }
svg.topology { display: block; max-width: 100%; height: auto; font-family: "DejaVu Sans", "Segoe UI", Helvetica, Arial, sans-serif; }
svg .colhead { font-size: 13px; font-weight: bold; fill: #57606a; letter-spacing: .04em; text-transform: uppercase; }
svg .name { font-size: 14px; font-weight: bold; fill: #1f2328; }
svg .sub { font-size: 12px; fill: #57606a; }
svg .role { font-size: 12px; font-weight: bold; }
svg .service .box { fill: #fff; stroke: #8c959f; stroke-width: 1.5; }
svg .network .box { fill: #f6f8fa; stroke: #bc4c00; stroke-width: 2; }
svg .network.internal .box { fill: #ddf4ff; stroke: #0969da; stroke-dasharray: 7 4; }
svg .network.external .box { fill: #fff8c5; stroke: #9a6700; }
svg .kindtag { font-size: 12px; font-weight: bold; fill: #bc4c00; }
svg .kindtag.internal { fill: #0969da; } svg .kindtag.external { fill: #9a6700; }
svg .hostbox { fill: #eaeef2; stroke: #57606a; stroke-width: 1.5; }
svg .port > rect { fill: #fff; stroke: #57606a; }
svg .port text { font-size: 12px; fill: #1f2328; font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; }
svg .port.all > rect { fill: #ffebe9; stroke: #d1242f; stroke-width: 1.5; }
svg .port .alltag { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 11px; font-weight: bold; fill: #d1242f; }
svg .store > rect { fill: #fff; stroke: #6e7781; stroke-width: 1.5; }
svg .store.key > rect { fill: #fff8c5; stroke: #9a6700; stroke-width: 2.5; }
svg .keytag { font-size: 11px; font-weight: bold; fill: #9a6700; }
svg .link { fill: none; stroke: #8c959f; stroke-width: 1.6; }
svg .link.net.internal { stroke: #0969da; stroke-dasharray: 6 4; }
svg .link.port { stroke: #57606a; stroke-width: 1.8; }
svg .link.port.all { stroke: #d1242f; stroke-width: 2.4; }
svg .link.mount.rw { stroke: #9a6700; stroke-width: 2.4; }
svg .link.mount.ro { stroke: #8c959f; stroke-dasharray: 3 3; }
svg .link.mount.flagged { stroke: #d1242f; stroke-width: 3; }
svg .mode { font-size: 11px; font-weight: bold; fill: #57606a; } svg .mode.rw { fill: #9a6700; }
svg .badge text { font-size: 11px; font-weight: bold; fill: #fff; }
svg .badge .sev-critical { fill: #a40e26; } svg .badge .sev-high { fill: #d1242f; }
svg .badge .sev-medium { fill: #bf8700; } svg .badge .sev-low { fill: #0969da; }
.legend { display: flex; flex-wrap: wrap; gap: 6px 18px; color: #57606a; font-size: 12px; margin: 8px 4px 0; }
.legend i { display: inline-block; width: 18px; height: 10px; margin-right: 6px; vertical-align: middle; border-radius: 2px; box-sizing: border-box; }
.legend .l-internal i { border: 2px dashed #0969da; background: #ddf4ff; }
.legend .l-routed i { border: 2px solid #bc4c00; background: #f6f8fa; }
.legend .l-all i { border: 2px solid #d1242f; background: #ffebe9; }
.legend .l-key i { border: 2px solid #9a6700; background: #fff8c5; }
.group { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 4px 16px 8px; margin: 10px 0; }
.group:target { outline: 3px solid #0969da; }
.group h3 .kind { color: #57606a; font-weight: normal; }
ul.findings { list-style: none; padding: 0; margin: 0; }
li.finding { border-top: 1px solid #eaeef2; padding: 8px 0; }
li.finding:first-child { border-top: 0; }
.sev { display: inline-block; min-width: 62px; text-align: center; color: #fff; font-size: 11px; font-weight: bold; border-radius: 10px; padding: 1px 6px; text-transform: uppercase; }
.sev.critical { background: #a40e26; } .sev.high { background: #d1242f; } .sev.medium { background: #bf8700; } .sev.low { background: #0969da; }
.rule { font-weight: bold; } .msg { margin: 4px 0 2px; } .where { color: #57606a; font-size: 12px; margin: 0; word-break: break-all; }
.fix { margin: 4px 0 0; } .fix b { color: #1a7f37; }
.suppressed { color: #57606a; } .suppressed summary { cursor: pointer; }
table { border-collapse: collapse; background: #fff; margin: 6px 0 12px; font-size: 13px; }
th, td { border: 1px solid #d0d7de; padding: 4px 10px; text-align: left; }
th { background: #eaeef2; }
tr.mismatch td { background: #ffebe9; color: #82071e; font-weight: bold; }
td.ok { color: #1a7f37; font-weight: bold; } td.bad { color: #d1242f; font-weight: bold; }
.clean { color: #1a7f37; font-weight: bold; }
ul.contents { list-style: none; padding: 0; } ul.contents li { margin: 4px 0; }
ul.contents .verdict { font-size: 11px; min-width: 44px; text-align: center; }
code { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
"""  # noqa: E501 - one CSS rule a line reads best

def _legend() -> str:
    roles = sorted(Role, key=lambda r: (ROLE_ORDER.get(r.value, 9), r.value))
    swatches = "".join(
        f'<span class="l-role"><i style="background:{ROLE_COLOR.get(r.value, OTHER_COLOR)}"></i>{ROLE_LEGEND.get(r.value, r.value)}</span>'
        for r in roles
    )
    return (
        f'<div class="legend">{swatches}'
        '<span class="l-internal"><i></i>internal network (no route out)</span><span class="l-routed"><i></i>routed network</span>'
        '<span class="l-all"><i></i>port on all interfaces</span><span class="l-key"><i></i>key store (rw solid, ro dashed)</span></div>'
    )

_KIND_LABEL = {"service": "service", "network": "network", "volume": "volume", "hostdir": "host directory", "stack": ""}


def _element_title(topo: Topology, element: Element, drawn: dict[Element, Store]) -> str:
    if element == STACK:
        return '<span class="kind">the stack as a whole</span>'
    name = drawn[element].label if element in drawn else element.key
    extra = ""
    if element.kind == "service":
        svc = topo.services.get(element.key)
        extra = f" ({svc.role.value})" if svc else " (not running)"
    elif element.kind == "network" and element.key in topo.networks:
        extra = " (internal)" if topo.networks[element.key].internal else " (not internal)"
    elif element in drawn and drawn[element].key_store:
        extra = " (key store)"
    return f'<span class="kind">{_KIND_LABEL[element.kind]}</span> {_e(name)}{extra}'


def _finding_html(f: Finding) -> str:
    where = f'<p class="where">{_e(f.location)}</p>' if f.location else ""
    title = f" {_e(f.title)}" if f.title else ""
    reason = f'<p class="where">suppressed ({_e(f.suppression_kind or "")}): {_e(f.suppression_reason or "")}</p>' if f.suppressed else ""
    return (f'<li class="finding" data-rule="{_e(f.rule)}" data-severity="{f.severity.value}">'
            f'<span class="sev {f.severity.value}">{f.severity.value}</span> <span class="rule">{_e(f.rule)}</span>{title}'
            f'<p class="msg">{_e(f.message)}</p>{where}{reason}'
            f'<p class="fix"><b>Fix:</b> {_e(f.fix)}</p></li>')


def _findings_html(topo: Topology, groups: dict[Element, list[Finding]], drawn: dict[Element, Store], ids: Ids) -> str:
    def rank(element: Element) -> tuple:
        active = [f for f in groups[element] if not f.suppressed]
        top = worst(active)
        return (top is None, -(top.severity.rank if top else 0), -len(active), element.kind, element.key)

    out = []
    for element in sorted(groups, key=rank):
        items = groups[element]
        active = [f for f in items if not f.suppressed]
        quiet = [f for f in items if f.suppressed]
        out.append(f'<section class="group" id="f-{ids(element)}" data-kind="{element.kind}" data-key="{_e(element.key)}">')
        out.append(f"<h3>{_element_title(topo, element, drawn)} — {len(active)} finding{'s' if len(active) != 1 else ''}</h3>")
        if active:
            out.append('<ul class="findings">' + "".join(_finding_html(f) for f in active) + "</ul>")
        if quiet:
            out.append(f'<details class="suppressed"><summary>{len(quiet)} suppressed</summary><ul class="findings">'
                       + "".join(_finding_html(f) for f in quiet) + "</ul></details>")
        out.append("</section>")
    return "\n".join(out)


def _matrix_html(cells: Sequence[MatrixCell], checks: Sequence[ProbeCheck]) -> str:
    out = ['<h3>Reachability (TCP connect)</h3>']
    if cells:
        bad = sum(1 for c in cells if not c.ok)
        out.append(f'<p class="meta">{len(cells)} connections tried, {bad} mismatch{"es" if bad != 1 else ""}.</p>')
        out.append('<table class="matrix"><thead><tr><th>target</th><th>address</th><th>from</th><th>expected</th>'
                   "<th>observed</th><th></th></tr></thead><tbody>")
        for c in cells:
            row = "ok" if c.ok else "mismatch"
            out.append(f'<tr class="{row}"><td>{_e(f"{c.service}:{c.port}")}</td><td>{_e(f"{c.address} ({c.via})")}</td>'
                       f"<td>{_e(c.vantage)}</td><td>{_e(c.expected or '-')}</td><td>{_e(c.observed)}</td>"
                       f'<td class="{"ok" if c.ok else "bad"}">{"ok" if c.ok else "MISMATCH"}</td></tr>')
        out.append("</tbody></table>")
    else:
        out.append('<p class="meta">No reachability probes ran (--probes cheap or none, or nothing to probe).</p>')
    if checks:
        out.append('<h3>Probes</h3><table class="checks"><thead><tr><th>probe</th><th></th><th>detail</th></tr></thead><tbody>')
        for check in checks:
            out.append(f'<tr class="{"ok" if check.ok else "mismatch"}"><td>{_e(check.name)}</td>'
                       f'<td class="{"ok" if check.ok else "bad"}">{"ok" if check.ok else "FAIL"}</td><td>{_e(check.detail)}</td></tr>')
        out.append("</tbody></table>")
    return "\n".join(out)


def _section_html(section: Section, index: int, heading: str) -> str:
    out = [f'<section class="stack" id="stack-{index}">', f"<{heading}>{_e(section.title)}</{heading}>"]
    if section.error is not None or section.topology is None:
        out.append(f'<p><span class="verdict error">ERROR</span>{_e(section.error or "could not be read")}</p></section>')
        return "\n".join(out)
    topo = section.topology
    summary = section.summary
    failed = bool(summary and summary.failed) or bool(section.exit_code)
    verdict = '<span class="verdict fail">FAIL</span>' if failed else '<span class="verdict pass">PASS</span>'
    if summary is not None:
        counts = ", ".join(f"{n} {s}" for s, n in summary.by_severity.items() if n) or "no findings"
        if summary.suppressed:
            counts += f"; {summary.suppressed} suppressed"
        out.append(f"<p>{verdict}{_e(counts)} (fail on {_e(summary.fail_on)}; {summary.services} services"
                   f"{f'; exit code {section.exit_code}' if section.exit_code is not None else ''})</p>")
    files = list(summary.files if summary else topo.files)
    if files:
        out.append(f'<p class="meta">files: {_e(", ".join(files))}</p>')
    if topo.project:
        origin = "running containers" if topo.origin == "engine" else "compose file"
        out.append(f'<p class="meta">project {_e(topo.project)} · {origin}'
                   f"{f' · {section.seconds:.1f}s' if section.seconds is not None else ''}</p>")
    drawn = stores(topo)
    groups = placed(topo, section.findings, drawn)
    ids = Ids(f"s{index}")
    out.append('<div class="picture">' + topology_svg(topo, groups, drawn, ids) + "</div>")
    out.append(_legend())
    out.append("<h3>Findings, by the element they concern</h3>")
    if groups:
        out.append(_findings_html(topo, groups, drawn, ids))
    else:
        out.append('<p class="clean">No findings: the stack keeps stackgen\'s security model.</p>')
    if section.matrix is not None:
        out.append(_matrix_html(section.matrix, section.checks))
    out.append("</section>")
    return "\n".join(out)


def render_sections(sections: Sequence[Section], title: str, tool_version: str = "", intro: str = "") -> str:
    """The whole page: one section per stack (one for `verify FILE`, one per file for `--each`, with a contents list)."""
    body = [_section_html(section, i, "h2") for i, section in enumerate(sections)]
    if intro:
        body.insert(0, f"<p>{_e(intro)}</p>")
    if len(sections) > 1:
        items = []
        for i, section in enumerate(sections):
            state = "error" if section.error is not None or section.topology is None else (
                "fail" if section.exit_code or (section.summary and section.summary.failed) else "pass")
            items.append(f'<li><span class="verdict {state}">{state.upper()}</span><a href="#stack-{i}">{_e(section.title)}</a></li>')
        body.insert(1 if intro else 0, '<ul class="contents">' + "".join(items) + "</ul>")
    version = f" {_e(tool_version)}" if tool_version else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">\n'
        # The page loads nothing and runs nothing: the browser enforces it.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_e(title)}</title>\n<style>{_CSS}</style></head>\n"
        f'<body><main><h1>{_e(title)}</h1><p class="meta">stackgen{version} · verify report</p>\n'
        + "\n".join(body)
        + "\n</main></body></html>\n"
    )


def render_html(
    topo: Topology,
    findings: Sequence[Finding],
    summary: Summary | None = None,
    *,
    exit_code: int | None = None,
    tool_version: str = "",
    matrix: Sequence[MatrixCell] | None = None,
    checks: Sequence[ProbeCheck] = (),
    seconds: float | None = None,
    title: str | None = None,
) -> str:
    """One stack's page: `verify FILE --format html`, or with `matrix` (even empty) the `--live` one."""
    files = list(summary.files) if summary else list(topo.files)
    name = title or (f"stackgen verify --live: {topo.project}" if matrix is not None else
                     f"stackgen verify: {', '.join(files) or topo.project or 'stack'}")
    section = Section(", ".join(files) or (topo.project or "stack"), topo, findings, summary, exit_code, matrix, checks, seconds)
    return render_sections([section], name, tool_version)
