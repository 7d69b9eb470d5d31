"""Backups with a fake engine: archive layout, manifest checksums, tamper detection, retention, restore refusals."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from stackgen import stackdir
from stackgen.generate import workflow
from stackgen.operate import backup
from stackgen.upstream.contracts import load_contract
from tests.golden import golden_stack
from tests.support.fakes import FakeContainer, FakeEngine, volume_tar


def FakeUser(name: str, status: str) -> FakeContainer:
    """A container that uses a volume (what the engine lists for `filters={"volume": ...}`)."""
    return FakeContainer(name=name, status=status)


@pytest.fixture
def stack_dir(tmp_path) -> Path:
    stack = golden_stack("caddy", "certbot-http01")
    directory = tmp_path / "stack"
    workflow.init(directory, stack)
    return directory


@pytest.fixture
def engine(stack_dir) -> FakeEngine:
    engine = FakeEngine()
    project = stackdir.load_stack(stack_dir).project
    engine.volumes_by_name[f"{project}_node-red-data"] = {}
    engine.content[f"{project}_node-red-data"] = volume_tar({
        "flows.json": (b'[{"id":"tab"}]', 0o644, 1000, 1000),
        ".config.runtime.json": (b"{}", 0o600, 1000, 1000),
        "lib": (None, 0o755, 1000, 1000),
    })
    engine.volumes_by_name[f"{project}_certs"] = {}
    engine.content[f"{project}_certs"] = volume_tar({
        "archive": (None, 0o750, 0, 1500),
        "archive/privkey1.pem": (b"-----KEY-----", 0o640, 0, 1500),
        "live": (None, 0o750, 0, 1500),
        "live/x": (None, 0o750, 0, 1500),
        "live/x/privkey.pem": ("../../archive/privkey1.pem", 0, 0, 0),
    }, root=(0o755, 0, 0))
    return engine


def members(path: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return tar.getmembers()


def test_backup_layout_modes_owners_and_manifest(stack_dir, engine, tmp_path):
    result = backup.create(engine, stack_dir, output_dir=tmp_path / "out", include_keys=True, clock=lambda: 1714557600)
    assert result.path.name == "golden-caddy-certbot-http01-20240501T100000Z.tar.gz"
    assert result.path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o700
    names = [m.name for m in members(result.path)]
    assert names[-1] == "manifest.json"
    assert "stack/stack.yaml" in names and "stack/secrets/node_red_credential_secret" in names
    assert "volumes/node-red-data/flows.json" in names and "volumes/certs/live/x/privkey.pem" in names
    info = {m.name: m for m in members(result.path)}
    assert (info["volumes/node-red-data/flows.json"].uid, info["volumes/node-red-data"].mode & 0o7777) == (1000, 0o750)
    assert (info["volumes/certs/archive/privkey1.pem"].gid, info["volumes/certs/archive/privkey1.pem"].mode & 0o777) == (1500, 0o640)
    assert info["stack/secrets/node_red_credential_secret"].mode & 0o777 == 0o600
    manifest = backup.verify_archive(result.path)
    assert manifest["project"] == "golden-caddy-certbot-http01" and manifest["volumes"] == ["node-red-data", "certs"]
    flows = next(e for e in manifest["entries"] if e["path"] == "volumes/node-red-data/flows.json")
    assert flows["mode"] == "0644" and len(flows["sha256"]) == 64
    assert engine.helpers_removed == 2, "helper containers are removed"
    assert engine.helpers_removed_with_volumes == 2, "with their anonymous volumes (v=True)"
    assert not list((tmp_path / "out").glob("*.partial")), "no partial archive left behind"


def test_without_keys_the_certificate_volume_stays_out(stack_dir, engine, tmp_path):
    result = backup.create(engine, stack_dir, output_dir=tmp_path)
    assert result.volumes == ["node-red-data"]
    assert not [m for m in members(result.path) if m.name.startswith("volumes/certs")]


def rewrite(source: Path, target: Path, change) -> None:
    """Copy an archive member by member through `change(info, data) -> (info, data) | None`."""
    with tarfile.open(source) as old, tarfile.open(target, "w:gz") as new:
        for info in old.getmembers():
            data = old.extractfile(info).read() if info.isreg() else None
            changed = change(info, data)
            if changed is None:
                continue
            info, data = changed
            if data is not None:
                info.size = len(data)
            new.addfile(info, io.BytesIO(data) if data is not None else None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda i, d: (i, b'[{"id":"evil"}]') if i.name.endswith("flows.json") else (i, d), "checksum, owner or mode differs"),
        (lambda i, d: None if i.name.endswith("flows.json") else (i, d), "missing"),
        (lambda i, d: (setattr(i, "mode", 0o666) or i, d) if i.name.endswith("flows.json") else (i, d), "checksum, owner or mode"),
        (lambda i, d: (setattr(i, "name", "../escape") or i, d) if i.name.endswith("flows.json") else (i, d), "unexpected member"),
        (lambda i, d: None if i.name == "manifest.json" else (i, d), "no stackgen manifest"),
    ],
)
def test_tampered_archives_are_refused(stack_dir, engine, tmp_path, change, message):
    good = backup.create(engine, stack_dir, output_dir=tmp_path).path
    bad = tmp_path / "bad.tar.gz"
    rewrite(good, bad, change)
    with pytest.raises(backup.BackupError, match=message):
        backup.verify_archive(bad)


def test_truncated_archive_is_refused(stack_dir, engine, tmp_path):
    good = backup.create(engine, stack_dir, output_dir=tmp_path).path
    bad = tmp_path / "cut.tar.gz"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(backup.BackupError, match="not a readable backup"):
        backup.verify_archive(bad)


def test_symlinks_may_not_leave_their_volume():
    info = tarfile.TarInfo("volumes/certs/live/x/privkey.pem")
    info.type, info.linkname = tarfile.SYMTYPE, "../../archive/privkey1.pem"
    backup._check_link(info)
    info.linkname = "../../../../etc/shadow"
    with pytest.raises(backup.BackupError, match="leaves its volume"):
        backup._check_link(info)
    info.linkname = "/etc/shadow"
    with pytest.raises(backup.BackupError, match="absolute"):
        backup._check_link(info)


def test_retention_keeps_the_newest(tmp_path):
    for stamp in ("20240101T000000Z", "20240102T000000Z", "20240103T000000Z"):
        (tmp_path / f"p-{stamp}.tar.gz").write_bytes(b"x")
    (tmp_path / "p-x-20240101T000000Z.tar.gz").write_bytes(b"other project")
    (tmp_path / "notes.txt").write_text("kept")
    removed = backup.prune(tmp_path, "p", 2)
    assert [p.name for p in removed] == ["p-20240101T000000Z.tar.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt", "p-20240102T000000Z.tar.gz", "p-20240103T000000Z.tar.gz", "p-x-20240101T000000Z.tar.gz"]


def test_restore_refuses_a_running_stack(stack_dir, engine, tmp_path):
    archive = backup.create(engine, stack_dir, output_dir=tmp_path).path
    engine.users["golden-caddy-certbot-http01_node-red-data"] = [FakeUser("golden-node-red-1", "running")]
    with pytest.raises(backup.BackupError, match="in use by running container"):
        backup.restore(engine, archive, stack_dir, force=True)
    engine.users["golden-caddy-certbot-http01_node-red-data"] = [FakeUser("golden-node-red-1", "exited")]
    with pytest.raises(backup.BackupError, match="still attached"):
        backup.restore(engine, archive, stack_dir, force=True)
    assert not engine.put


def test_restore_refuses_a_non_empty_volume_without_force(stack_dir, engine, tmp_path):
    archive = backup.create(engine, stack_dir, output_dir=tmp_path).path
    with pytest.raises(backup.BackupError, match="not empty"):
        backup.restore(engine, archive, stack_dir)
    result = backup.restore(engine, archive, stack_dir, force=True)
    assert result.volumes == ["node-red-data"]


def test_restore_into_a_new_directory(stack_dir, engine, tmp_path):
    archive = backup.create(engine, stack_dir, output_dir=tmp_path, include_keys=True).path
    del engine.volumes_by_name["golden-caddy-certbot-http01_node-red-data"]
    del engine.volumes_by_name["golden-caddy-certbot-http01_certs"]
    target = tmp_path / "restored"
    result = backup.restore(engine, archive, target)
    assert sorted(result.volumes) == ["certs", "node-red-data"]
    assert (target / "stack.yaml").read_bytes() == (stack_dir / "stack.yaml").read_bytes()
    secret = target / "secrets" / "node_red_credential_secret"
    assert secret.read_bytes() == (stack_dir / "secrets" / "node_red_credential_secret").read_bytes()
    assert secret.stat().st_mode & 0o777 == 0o600
    assert (target / "compose.yaml").exists(), "the directory is rendered from the restored stack.yaml"
    labels = engine.volumes_by_name["golden-caddy-certbot-http01_certs"]
    assert labels["com.docker.compose.project"] == "golden-caddy-certbot-http01" and labels["com.docker.compose.volume"] == "certs"
    with tarfile.open(fileobj=io.BytesIO(engine.put["golden-caddy-certbot-http01_certs"])) as tar:
        got = {m.name: m for m in tar.getmembers()}
    assert got["vol/archive/privkey1.pem"].gid == 1500 and got["vol/archive/privkey1.pem"].mode & 0o777 == 0o640
    assert got["vol/live/x/privkey.pem"].linkname == "../../archive/privkey1.pem"
    assert load_contract("certbot").reference("linux/amd64") in engine.images_used, "the certificate volume is reached through the sidecar's image"


def test_restore_refuses_a_different_stack_yaml_without_force(stack_dir, engine, tmp_path):
    archive = backup.create(engine, stack_dir, output_dir=tmp_path).path
    other = tmp_path / "other"
    workflow.init(other, golden_stack("nginx", "certbot-http01"))
    before = (other / "stack.yaml").read_bytes()
    with pytest.raises(backup.BackupError, match="differs from the backup"):
        backup.restore(engine, archive, other)
    assert (other / "stack.yaml").read_bytes() == before and not engine.put
