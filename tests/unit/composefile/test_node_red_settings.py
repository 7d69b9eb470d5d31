"""Reading Node-RED's settings.js where a compose file mounts it (stackgen/composefile/node_red_settings.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackgen.composefile.loader import load_compose
from stackgen.composefile.node_red_settings import read_settings, settings_path


@pytest.mark.parametrize(("text", "admin_auth", "line"), [
    ("module.exports = { adminAuth: { type: 'credentials', users: [] } }", True, 1),
    ("module.exports = {\n  'adminAuth': require('./auth.js'),\n}", True, 2),
    ('module.exports = {\n\n  "adminAuth" : {type: "strategy"}\n}', True, 3),
    ("const settings = {};\nsettings.adminAuth = { type: 'credentials' };\nmodule.exports = settings;", True, 2),
    ("module.exports = {\n  //adminAuth: {\n  //  type: 'credentials'\n  //},\n}", False, None),
    ("module.exports = {\n  /* adminAuth: {\n    type: 'credentials'\n  }, */\n}", False, None),
    ("module.exports = { adminAuth: null, x: 1 }", False, None),
    ("module.exports = { adminAuth: false }", False, None),
    ("module.exports = { adminAuth: undefined }", False, None),
    ("module.exports = { note: 'set adminAuth: {...} to protect it' }", False, None),
    ("module.exports = { url: 'http://x//adminAuth: 1', adminAuth: {} }", True, 1),  # `//` inside a string is no comment
    ("module.exports = { myadminAuth: {}, adminAuthx: {} }", False, None),
    ("if (settings.adminAuth == null) {}", False, None),
    # A regex literal with a quote opens a "string" to the end of its line: conservative, nothing is claimed there.
    ("module.exports = { re: /[\"]/, adminAuth: {} }", False, None),
])
def test_admin_auth_is_an_uncommented_key_with_a_value(text: str, admin_auth: bool, line: int | None) -> None:
    parsed = read_settings(text)
    assert (parsed.admin_auth, parsed.admin_auth_line) == (admin_auth, line)


@pytest.mark.parametrize(("text", "root"), [
    ("module.exports = {}", "/"),
    ("module.exports = { httpAdminRoot: '/editor/' }", "/editor"),
    ("module.exports = { httpAdminRoot: \"admin\" }", "/admin"),
    ("module.exports = { httpRoot: '/red' }", "/red"),
    ("module.exports = { httpRoot: '/red', httpAdminRoot: '/ed' }", "/ed"),
    ("module.exports = { httpAdminRoot: false }", False),
    ("module.exports = { httpAdminRoot: process.env.ADMIN_ROOT }", None),
    ("module.exports = {\n  // httpAdminRoot: '/admin',\n}", "/"),
])
def test_where_the_editor_lives(text: str, root: str | bool | None) -> None:
    assert read_settings(text).admin_root == root


@pytest.mark.parametrize(("args", "path"), [
    ([], "/data/settings.js"),
    (["--settings", "/etc/nr/settings.js"], "/etc/nr/settings.js"),
    (["-s", "/etc/nr/settings.js"], "/etc/nr/settings.js"),
    (["--settings=/etc/nr/s.js"], "/etc/nr/s.js"),
    (["--userDir", "/home/nr/.node-red"], "/home/nr/.node-red/settings.js"),
    (["-u", "/srv/nr", "flows.json"], "/srv/nr/settings.js"),
    (["--settings", "conf/settings.js"], "/usr/src/node-red/conf/settings.js"),
])
def test_the_settings_file_node_red_reads(args: list[str], path: str) -> None:
    assert settings_path(args) == path


def _load(tmp_path: Path, volumes: str, command: str = "") -> object:
    compose = tmp_path / "compose.yaml"
    compose.write_text(f"services:\n  nr:\n    image: nodered/node-red:5.0.7\n    volumes: {volumes}\n{command}")
    return load_compose([compose], environ={}).services["nr"].node_red_settings


def test_the_loader_follows_the_bind_mount_to_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "settings.js").write_text("module.exports = {\n  adminAuth: {type: 'credentials'}\n}\n")
    settings = _load(tmp_path, "['./data:/data']")
    assert (settings.path, settings.host_file, settings.admin_auth) == ("/data/settings.js", "data/settings.js", True)
    assert (settings.src.file, settings.src.line) == ("data/settings.js", 2)
    # a file bind mounted over the settings file wins over the directory's
    (tmp_path / "nr.js").write_text("module.exports = {}\n")
    settings = _load(tmp_path, "['./data:/data', './nr.js:/data/settings.js:ro']")
    assert (settings.host_file, settings.admin_auth) == ("nr.js", False)


def test_what_the_loader_cannot_read_stays_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert _load(tmp_path, "['./data:/data']").admin_auth is None  # missing
    settings = _load(tmp_path, "['nr:/data']\nvolumes:\n  nr: {}\n")
    assert (settings.host_file, settings.admin_auth) == (None, None)  # in a volume
    (tmp_path / "big").mkdir()
    (tmp_path / "big" / "settings.js").write_text("adminAuth: {},\n" + "x" * (600 * 1024))
    assert _load(tmp_path, "['./big:/data']").admin_auth is None  # too large to be a settings file
    (tmp_path / "dir" / "settings.js").mkdir(parents=True)
    assert _load(tmp_path, "['./dir:/data']").admin_auth is None  # not a file


def test_only_node_red_services_get_settings(tmp_path: Path) -> None:
    compose = tmp_path / "compose.yaml"
    compose.write_text("services:\n  app:\n    image: alpine:3.20\n    volumes: ['./data:/data']\n")
    assert load_compose([compose], environ={}).services["app"].node_red_settings is None
