"""`verify --format html`: one self-contained page, the topology drawn, each finding on its element (issue 11, part 6).

What the page must show is checked on the parsed page (tests/htmltree.py); that a browser draws it
is tests/unit/verify/test_report_html_browser.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from stackgen.cli.app import app
from stackgen.cli.verify import execute_live, main
from stackgen.findings import Finding, Severity
from stackgen.live import checks as live
from stackgen.topology import Mount, Network, Port, Role, Service, Topology, Volume
from stackgen.verify.elements import Element, place, placed, stores
from stackgen.verify.html import render_html
from stackgen.verify.pipeline import verify
from stackgen.verify.report import summarise
from stackgen.verify.rules import ALL_RULES, run_rules
from tests.htmltree import Node, parse

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "tests" / "corpus"
HOSTILE = "<script>alert(1)</script>"


def page_of(path: Path, tmp_path: Path, *extra: str) -> tuple[int, str]:
    out = tmp_path / "report.html"
    code = main(["verify", str(path), "--format", "html", "-o", str(out), *extra])
    return code, out.read_text(encoding="utf-8")


def group(doc: Node, kind: str, key: str) -> Node:
    """The findings list of one element."""
    return doc.find("section", "group", data_kind=kind, data_key=key)


def rules_in(node: Node) -> list[str]:
    return [li.attrs["data-rule"] for li in node.find_all("li", "finding")]


def assert_self_contained(doc: Node, text: str) -> None:
    """Nothing to fetch, nothing to run: no external src/href, no scripts, no handlers, a CSP that forbids both."""
    for node in doc.iter():
        assert node.tag not in ("script", "iframe", "object", "embed", "link", "img", "image", "use", "foreignobject"), node.tag
        for name, value in node.attrs.items():
            assert not name.startswith("on"), (node.tag, name)
            if name in ("src", "href", "xlink:href", "action", "srcset", "poster", "data"):
                assert value is not None and value.startswith("#"), (node.tag, name, value)
    assert not re.search(r"\b(src|href)\s*=\s*[\"']?\s*(https?:|//|data:|javascript:)", text, re.I)
    assert "@import" not in text and not re.search(r"url\((?!#)", text), "CSS may only point at ids in the page"
    csp = doc.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in csp and "script-src" not in csp


# --- a hardened stack ------------------------------------------------------------------------------


def test_hardened_stack_page_shows_services_networks_ports_and_the_key_store(tmp_path):
    code, text = page_of(CORPUS / "hardened.compose.yaml", tmp_path)
    assert code == 0
    doc = parse(text)
    assert_self_contained(doc, text)
    svg = doc.find("svg", "topology")
    roles = {g.attrs["data-key"]: g.attrs["data-role"] for g in svg.find_all("g", "service")}
    assert roles == {"node-red": "node-red", "edge": "edge", "certbot": "certbot"}
    for name in roles:
        assert name in svg.find("g", "service", data_key=name).text

    internal = svg.find("g", "network", data_key="internal")
    assert "internal" in internal.classes and internal.attrs["data-internal"] == "true" and "internal" in internal.text
    for key in ("egress", "public"):
        net = svg.find("g", "network", data_key=key)
        assert "internal" not in net.classes and "routed" in net.text
    links = {(p.attrs["data-service"], p.attrs["data-network"]): p.classes for p in svg.find_all("path", "net")}
    assert set(links) == {("node-red", "internal"), ("node-red", "egress"), ("edge", "internal"), ("edge", "public"), ("certbot", "public")}
    assert "internal" in links[("edge", "internal")] and "internal" not in links[("edge", "public")]

    ports = svg.find_all("g", "port", data_service="edge")
    assert [p.find("text", "label").text for p in ports] == ["0.0.0.0:443 → 8443/tcp", "0.0.0.0:80 → 8080/tcp"]
    assert all("all" in p.classes and "all interfaces" in p.text for p in ports)

    certs = svg.find("g", "store", data_key="certs")
    assert "key" in certs.classes and "key store" in certs.text
    mounts = {p.attrs["data-service"]: p.classes for p in svg.find_all("path", "mount", data_store="certs")}
    assert set(mounts) == {"edge", "certbot"}
    assert {"ro", "key"} <= mounts["edge"] and {"rw", "key"} <= mounts["certbot"]
    assert "key" not in svg.find("g", "store", data_key="node-red-data").classes

    assert not svg.find_all("a", "badge"), "a clean stack has no badges"
    assert "PASS" in doc.find("span", "verdict").text
    certbot = group(doc, "service", "certbot")  # the suppressed SG018 is listed, folded, with its reason
    assert rules_in(certbot) == ["SG018"] and "root-owned" in certbot.find("details", "suppressed").text


def test_rendered_reference_stack_draws_its_internal_network(tmp_path):
    code, text = page_of(ROOT / "compose" / "caddy" / "compose.yaml", tmp_path)
    assert code == 0
    svg = parse(text).find("svg", "topology")
    assert svg.find("g", "network", data_key="internal").attrs["data-internal"] == "true"
    assert {g.attrs["data-role"] for g in svg.find_all("g", "service")} == {"node-red", "edge", "certbot"}


# --- weak stacks -----------------------------------------------------------------------------


def test_weak_stack_findings_sit_on_the_key_store_the_network_and_the_services(tmp_path):
    code, text = page_of(CORPUS / "npm-shared-certs.compose.yaml", tmp_path)
    assert code == 1
    doc = parse(text)
    assert_self_contained(doc, text)
    svg = doc.find("svg", "topology")
    store = svg.find("g", "store", data_kind="hostdir")
    assert "key" in store.classes and "letsencrypt" in store.text
    mounts = {p.attrs["data-service"]: p.classes for p in svg.find_all("path", "mount", data_store=store.attrs["data-key"])}
    assert {"rw", "flagged"} <= mounts["npm"] and {"ro", "flagged"} <= mounts["node-red"]

    keys = group(doc, "hostdir", store.attrs["data-key"])
    assert rules_in(keys) == ["SG106", "SG107"]
    assert "Remove the key volume" in keys.text and "Add `:ro`" in keys.text, "each finding carries its fix"
    proxy = group(doc, "network", "proxy")
    assert rules_in(proxy) == ["SG103"] and "not internal" in proxy.text
    npm = group(doc, "service", "npm")
    assert "SG020" in rules_in(npm) and "SG106" not in rules_in(npm)

    # each badge sits on its element and links to that element's list; its tooltip names the rules
    for element in (store, svg.find("g", "network", data_key="proxy"), svg.find("g", "service", data_key="npm")):
        badge = element.find("a", "badge")
        target = doc.find("section", "group", id=badge.attrs["href"][1:])
        assert badge.attrs["href"] == "#f-" + element.attrs["id"]
        for rule in rules_in(target):
            assert rule in badge.find("title").text
    assert [t.text for t in store.find("a", "badge").find_all("text")] == ["1 crit", "1 high"]
    assert "FAIL" in doc.find("span", "verdict").text and "2 critical" in text


def test_forum_stack_node_red_published_on_all_interfaces(tmp_path):
    code, text = page_of(CORPUS / "forum-nodered.compose.yaml", tmp_path)
    assert code == 1
    doc = parse(text)
    svg = doc.find("svg", "topology")
    port = svg.find("g", "port", data_service="node-red")
    assert "all" in port.classes and "0.0.0.0:1880 → 1880/tcp" in port.text and "all interfaces" in port.text
    assert "all" in svg.find("path", "port", data_service="node-red").classes
    assert svg.find("g", "network", data_key="node-red-net").attrs["data-internal"] == "false"
    node_red = group(doc, "service", "node-red")
    assert {"SG102", "SG018", "SG020"} <= set(rules_in(node_red))
    first = node_red.find_all("li", "finding")[0]
    assert first.attrs["data-severity"] == "critical" and "Remove Node-RED's `ports:`" in first.text
    assert "2 crit" in svg.find("g", "service", data_key="node-red").find("a", "badge").text  # SG102, SG112


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("*.compose.yaml")))
def test_exit_codes_do_not_depend_on_the_format(name, tmp_path):
    path = CORPUS / name
    for extra in ((), ("--fail-on", "low"), ("--fail-on", "none")):
        text_code = main(["verify", str(path), "-o", str(tmp_path / "r.txt"), *extra])
        html_code, _ = page_of(path, tmp_path, *extra)
        assert html_code == text_code, (name, extra)


def test_typer_and_fast_path_write_the_same_page(tmp_path):
    path = CORPUS / "host-root.compose.yaml"
    fast = tmp_path / "fast.html"
    assert main(["verify", str(path), "--format", "html", "-o", str(fast)]) == 1
    result = CliRunner().invoke(app, ["verify", str(path), "--format", "html"])
    assert result.exit_code == 1
    assert result.stdout == fast.read_text(encoding="utf-8"), "same bytes either way, and from run to run"
    assert "html" in CliRunner().invoke(app, ["verify", "--help"]).output


def test_unknown_format_still_exits_2(tmp_path, capsys):
    assert main(["verify", str(CORPUS / "hardened.compose.yaml"), "--format", "htm"]) == 2
    assert "html" in capsys.readouterr().err


# --- hostile input ---------------------------------------------------------------------------


def hostile_topology() -> tuple[Topology, list[Finding]]:
    """Names a running engine can report (a compose label is any string): markup everywhere."""
    evil_net, evil_vol = 'evil"><img src=x onerror=alert(2)>', "certs</title><script>alert(3)</script>"
    topo = Topology(project=HOSTILE, files=(f"/tmp/{HOSTILE}/compose.yaml",))
    topo.networks = {evil_net: Network(evil_net, f"{HOSTILE}_net", internal=True), "pub": Network("pub", "p_pub")}
    topo.volumes = {evil_vol: Volume(evil_vol, evil_vol)}
    topo.services = {
        HOSTILE: Service(HOSTILE, image="nodered/node-red:4<b>bold</b>", role=Role.NODE_RED, user="<u>", networks=(evil_net, "pub"),
                         ports=[Port(1880, "1880", None)], mounts=[Mount("volume", evil_vol, "/etc/letsencrypt", read_only=True)]),
        "certbot": Service("certbot", image="certbot/certbot:v2.11.0", role=Role.CERTBOT, networks=("pub",),
                           mounts=[Mount("volume", evil_vol, "/etc/letsencrypt")]),
    }
    findings = sorted(run_rules(topo, ALL_RULES), key=Finding.sort_key)
    findings.append(Finding("SG043", Severity.LOW, f"assumed {HOSTILE}", fix=f"fix {HOSTILE}", title="<i>t</i>"))
    return topo, findings


def test_hostile_names_are_text_never_markup():
    topo, findings = hostile_topology()
    assert any(HOSTILE in f.message or f.service == HOSTILE for f in findings)
    text = render_html(topo, findings, summarise(findings, Severity.HIGH, list(topo.files), 2), exit_code=1)
    doc = parse(text)
    assert_self_contained(doc, text)
    for markup in ("<script>alert", "<img", "<b>bold", "<u>", "<i>t</i>"):
        assert markup not in text, markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    service = doc.find("g", "service", data_key=HOSTILE)  # the name survives, as text and as an attribute value
    assert HOSTILE in service.find_all("title")[0].text and service.find("text", "name").text.startswith("<script>alert(1)<")
    assert group(doc, "service", HOSTILE).text.count(HOSTILE) >= 1
    assert doc.find("g", "network", data_key='evil"><img src=x onerror=alert(2)>')
    assert doc.find("g", "store", data_key="certs</title><script>alert(3)</script>")
    for node in doc.iter():  # ids are counters: nothing from the input becomes an id or a link
        assert "<" not in node.attrs.get("id", "") and "alert" not in node.attrs.get("id", "")
        assert "alert" not in (node.attrs.get("href") or "")


def test_a_hostile_file_is_rejected_or_escaped(tmp_path):
    bad = tmp_path / "compose.yaml"
    bad.write_text(f'services:\n  "{HOSTILE}":\n    image: alpine:3.20\n')
    assert main(["verify", str(bad), "--format", "html", "-o", str(tmp_path / "r.html")]) == 2, "Compose rejects the name"
    bad.write_text("services:\n  a:\n    image: 'alpine:3.20<script>alert(1)</script>'\n    networks: [x]\n"
                   "networks:\n  x:\n    name: 'evil\"><script>alert(2)</script>'\n    internal: true\n")
    code, text = page_of(bad, tmp_path)
    assert code in (0, 1)
    doc = parse(text)
    assert_self_contained(doc, text)
    assert "<script>" not in text and "alert(2)" in doc.find("g", "network", data_key="x").text


# --- placement shared with the Mermaid renderer ------------------------------------------------


def declared_stack() -> Topology:
    topo = Topology(project="p")
    topo.networks = {"internal": Network("internal", "p_internal", internal=True), "public": Network("public", "p_public"),
                     "backend": Network("backend", "p_backend", internal=True)}
    topo.services = {
        "node-red": Service("node-red", role=Role.NODE_RED, networks=("internal", "backend"), mounts=[Mount("volume", "data", "/data")]),
        "edge": Service("edge", role=Role.EDGE, networks=("internal", "public"), ports=[Port(8443, "443", "0.0.0.0")],
                        mounts=[Mount("volume", "certs", "/etc/letsencrypt", read_only=True)]),
        "broker": Service("broker", networks=("internal", "backend")),
    }
    return topo


def test_network_and_store_findings_are_placed_on_their_element():
    topo = declared_stack()
    drawn = stores(topo)
    assert list(drawn) == [Element("volume", "certs"), Element("volume", "data")], "key stores first"

    def at(rule: str, service: str | None, message: str) -> Element:
        return place(topo, Finding(rule, Severity.HIGH, message, "fix", service=service), drawn)

    assert at("SG105", "broker", "reaches Node-RED (node-red) on internal network backend") == Element("network", "backend")
    assert at("SG103", "node-red", "Node-RED shares non-internal network 'public' with x") == Element("service", "node-red"), \
        "only the service's own networks"
    assert at("SG207", "edge", "is attached to network public, which the file does not give it") == Element("network", "public")
    assert at("SG203", None, "network p_internal is declared internal but is not (members: a)") == Element("network", "internal")
    assert at("SG208", "edge", "mounts /etc/letsencrypt writable, the file declares it read-only") == Element("volume", "certs")
    assert at("SG040", "node-red", "volume data is also writable by x") == Element("volume", "data")
    assert at("SG012", "edge", "keeps Docker's default capabilities") == Element("service", "edge")
    assert at("SG043", None, "anything") == Element("stack", "")


def test_placement_of_a_real_run_groups_every_finding_once():
    result = verify([CORPUS / "npm-shared-certs.compose.yaml"], fail_on=None)
    groups = placed(result.topology, result.findings)
    assert sum(len(v) for v in groups.values()) == len(result.findings)
    assert {e.kind for e in groups} == {"service", "network", "hostdir"}


# --- --each and --live -------------------------------------------------------------------------


def test_each_writes_one_page_with_a_section_per_stack(tmp_path):
    repo = tmp_path / "stacks"
    (repo / "good").mkdir(parents=True)
    (repo / "good" / "compose.yaml").write_text((CORPUS / "hardened.compose.yaml").read_text())
    (repo / "weak").mkdir()
    (repo / "weak" / "compose.yaml").write_text((CORPUS / "forum-nodered.compose.yaml").read_text())
    (repo / "broken").mkdir()
    (repo / "broken" / "compose.yaml").write_text(f"services: [{HOSTILE}\n")
    out = tmp_path / "each.html"
    code = main(["verify", "--each", str(repo), "--format", "html", "-o", str(out)])
    assert code == main(["verify", "--each", str(repo), "-o", str(tmp_path / "each.txt")]) == 2
    text = out.read_text(encoding="utf-8")
    doc = parse(text)
    assert_self_contained(doc, text)
    sections = doc.find_all("section", "stack")
    assert len(sections) == 3 and len(doc.find_all("svg", "topology")) == 2
    verdicts = [s.find("span", "verdict").text for s in sections]
    assert sorted(verdicts) == ["ERROR", "FAIL", "PASS"]
    assert len(doc.find("ul", "contents").find_all("a")) == 3
    assert "3 stacks: 1 pass, 1 fail, 1 could not be read" in text


def live_result() -> live.LiveResult:
    topo = declared_stack()
    topo.origin = "engine"
    cells = [
        live.Reach("internal", "node-red", "172.30.0.2", 1880, "open", "open", via="internal"),
        live.Reach("public", "node-red", "172.30.0.2", 1880, "closed", "open", via="internal"),
        live.Reach("host", "edge", "127.0.0.1", 443, "open", "open", via="published"),
    ]
    finding = live.get_rule("SG301").finding("node-red", f"node-red:1880 (172.30.0.2 on internal) opens from network public; {HOSTILE}")
    findings = [finding]
    checks = [live.Check("node-red -> canary", True, "blocked"), live.Check("key files", False, f"readable {HOSTILE}")]
    return live.LiveResult(topo, findings, summarise(findings, Severity.HIGH, [], 3), 1, cells, checks, 12.5)


def test_live_page_has_the_matrix_with_mismatches_marked(tmp_path, monkeypatch):
    monkeypatch.setattr(live, "verify_live", lambda *a, **k: live_result())
    monkeypatch.setattr("stackgen.engine.client", lambda: SimpleNamespace())
    out = tmp_path / "live.html"
    code = execute_live(tmp_path, None, None, 14, "all", "html", "high", [], out)
    assert code == 1
    text = out.read_text(encoding="utf-8")
    doc = parse(text)
    assert_self_contained(doc, text)
    table = doc.find("table", "matrix")
    assert [th.text for th in table.find_all("th")] == ["target", "address", "from", "expected", "observed", ""]
    rows = table.find("tbody").find_all("tr")
    assert len(rows) == 3
    bad = [r for r in rows if "mismatch" in r.classes]
    assert len(bad) == 1 and [td.text for td in bad[0].find_all("td")] == ["node-red:1880", "172.30.0.2 (internal)", "public", "closed", "open", "MISMATCH"]
    assert "FAIL" in doc.find("table", "checks").text and "<script>" not in text
    assert "SG301" in rules_in(group(doc, "service", "node-red"))
    assert "running containers" in text and "12.5s" in text
    assert execute_live(tmp_path, None, None, 14, "all", "mermaid", "high", [], out) == 1
    assert out.read_text().startswith("flowchart LR"), "--live --format mermaid draws too (it printed text before)"


def test_same_input_same_page():
    result = verify([CORPUS / "iotstack.compose.yaml"], fail_on=None)
    first = render_html(result.topology, result.findings, result.summary, exit_code=result.exit_code)
    again = verify([CORPUS / "iotstack.compose.yaml"], fail_on=None)
    assert first == render_html(again.topology, again.findings, again.summary, exit_code=again.exit_code)
