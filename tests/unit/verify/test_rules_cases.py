"""Rule behaviour beyond the documented examples: the cases other tools get wrong, and edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackgen.findings import Finding
from stackgen.verify.pipeline import verify


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def findings(tmp_path: Path, text: str, **kw) -> list[Finding]:
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    return [f for f in verify([path], environ={}, **kw).findings if not f.suppressed]


def rules_for(tmp_path: Path, text: str, service: str | None = None) -> set[str]:
    return {f.rule for f in findings(tmp_path, text) if service is None or f.service == service}


# --- credentials: the *_FILE false positive ---------------------------------------------


def test_file_variables_pointing_at_secrets_are_not_credentials(tmp_path: Path) -> None:
    text = """\
services:
  db:
    image: postgres:16.4
    environment:
      POSTGRES_PASSWORD_FILE: /run/secrets/db_password
      MYSQL_ROOT_PASSWORD_FILE: /run/secrets/root
      API_TOKEN_FILE: /run/secrets/token
      NODE_RED_CREDENTIAL_SECRET_FILE: /run/secrets/nr
      SECRET_KEY: /run/secrets/key
    secrets: [db_password]
secrets:
  db_password: {file: ./db_password}
"""
    assert not rules_for(tmp_path, text) & {"SG026", "SG027"}


def test_literal_credentials_are_found_with_their_line(tmp_path: Path) -> None:
    text = """\
services:
  db:
    image: postgres:16.4
    environment:
      POSTGRES_USER: app
      POSTGRES_PASSWORD: hunter2
      NODE_RED_CREDENTIAL_SECRET: abc123
      PASSWORD_MIN_LENGTH: "12"
      AUTH_ENABLED: "true"
      DATABASE_URL: postgres://app:hunter2@db/app
      BROKER_URL: mqtt://mqtt:1883
"""
    found = [f for f in findings(tmp_path, text) if f.rule in ("SG026", "SG027")]
    assert sorted((f.rule, f.line) for f in found) == [("SG026", 6), ("SG026", 7), ("SG027", 10)]


def test_credentials_from_env_file_point_at_the_env_file(tmp_path: Path) -> None:
    (tmp_path / "app.env").write_text("TZ=UTC\nADMIN_PASSWORD=s3cret\n")
    text = "services:\n  app:\n    image: x/app:1\n    env_file: app.env\n"
    (f,) = [f for f in findings(tmp_path, text) if f.rule == "SG026"]
    assert (f.file, f.line) == ("app.env", 2)


# --- root: explicit root users -----------------------------------------------------------


@pytest.mark.parametrize("user", ["root", "0", "0:0", "root:root", "0:1500", "'0'"])
def test_explicit_root_users(tmp_path: Path, user: str) -> None:
    text = f"services:\n  app:\n    image: nodered/node-red:4.0.9\n    user: {user}\n"
    assert "SG018" in rules_for(tmp_path, text)


@pytest.mark.parametrize("user", ["'1000'", "'1000:1000'", "node-red", "'10000:0'"])
def test_non_root_users(tmp_path: Path, user: str) -> None:
    text = f"services:\n  app:\n    image: example/app:1\n    user: {user}\n"
    assert not rules_for(tmp_path, text) & {"SG018", "SG019"}


def test_missing_user_is_not_root_for_images_that_drop_root(tmp_path: Path) -> None:
    text = "services:\n  nr:\n    image: nodered/node-red:4.0.9\n  other:\n    image: example/app:1\n"
    assert "SG019" not in rules_for(tmp_path, text, "nr")
    assert "SG019" in rules_for(tmp_path, text, "other")


# --- host mounts: `/`, the socket read-only, system paths ----------------------------------


@pytest.mark.parametrize("spec", ["/:/host", "/:/host:ro", "/:/rootfs:ro,rslave"])
def test_host_root_mount(tmp_path: Path, spec: str) -> None:
    text = f"services:\n  app:\n    image: example/app:1\n    volumes: ['{spec}']\n"
    found = rules_for(tmp_path, text)
    assert "SG003" in found
    assert not found & {"SG004", "SG005"}  # one mount, one finding about the host path


@pytest.mark.parametrize(
    "spec",
    [
        "/var/run/docker.sock:/var/run/docker.sock:ro",
        "/run/docker.sock:/docker.sock",
        "/var/run:/host-run:ro",
        "/run/user/1000/docker.sock:/var/run/docker.sock",
        "/run/containerd/containerd.sock:/run/containerd/containerd.sock",
    ],
)
def test_engine_socket_even_read_only(tmp_path: Path, spec: str) -> None:
    text = f"services:\n  app:\n    image: example/app:1\n    volumes: ['{spec}']\n"
    assert "SG002" in rules_for(tmp_path, text)


def test_use_api_socket(tmp_path: Path) -> None:
    text = "services:\n  app:\n    image: example/app:1\n    use_api_socket: true\n"
    assert "SG002" in rules_for(tmp_path, text)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("/etc:/host-etc", "SG005"),
        ("/etc/cron.d:/cron", "SG005"),
        ("/root/.ssh:/keys", "SG005"),
        ("/etc:/host-etc:ro", "SG004"),
        ("/proc:/host/proc:ro", "SG004"),
        ("/home/pi:/pi:ro", "SG004"),
        ("/home/pi/.docker:/cfg:ro", "SG004"),
        ("/var/log:/logs:ro", "SG004"),
        ("/etc/localtime:/etc/localtime", "SG004"),
    ],
)
def test_system_paths(tmp_path: Path, spec: str, expected: str) -> None:
    text = f"services:\n  app:\n    image: example/app:1\n    volumes: ['{spec}']\n"
    found = rules_for(tmp_path, text) & {"SG004", "SG005"}
    assert found == {expected}


@pytest.mark.parametrize(
    "spec",
    [
        "/etc/localtime:/etc/localtime:ro",
        "/etc/ssl/certs:/etc/ssl/certs:ro",
        "/home/pi/.node-red:/data",
        "./data:/data",
    ],
)
def test_harmless_host_paths(tmp_path: Path, spec: str) -> None:
    text = f"services:\n  app:\n    image: example/app:1\n    volumes: ['{spec}']\n"
    assert not rules_for(tmp_path, text) & {"SG002", "SG003", "SG004", "SG005"}


# --- ports ------------------------------------------------------------------------------


def test_duplicate_host_ports_across_services(tmp_path: Path) -> None:
    text = """\
services:
  a: {image: x/a:1, ports: ["8080:80"]}
  b: {image: x/b:1, ports: ["127.0.0.1:8080:80"]}
  c: {image: x/c:1, ports: ["127.0.0.2:9090:80", "127.0.0.3:9090:80"]}
"""
    dups = [f for f in findings(tmp_path, text) if f.rule == "SG022"]
    assert [(f.service, f.line) for f in dups] == [("b", 3)]


def test_edge_explicit_wildcard_is_its_job_but_implicit_is_not(tmp_path: Path) -> None:
    text = """\
services:
  edge:
    image: caddy:2.8.4
    ports:
      - {target: 443, published: "443", host_ip: 0.0.0.0}
      - "80:80"
"""
    found = [f for f in findings(tmp_path, text) if f.rule in ("SG020", "SG021")]
    assert [(f.rule, f.line) for f in found] == [("SG020", 6)]


def test_random_host_port_is_still_published(tmp_path: Path) -> None:
    text = "services:\n  mqtt:\n    image: eclipse-mosquitto:2\n    ports: ['1883']\n"
    assert {"SG101", "SG020"} <= rules_for(tmp_path, text)


# --- topology -----------------------------------------------------------------------------


def test_node_red_alone_on_an_egress_network_is_fine(tmp_path: Path) -> None:
    text = """\
services:
  node-red: {image: nodered/node-red:4.0.9, networks: [internal, egress]}
  edge: {image: caddy:2.8.4, networks: [internal, public]}
networks:
  internal: {internal: true}
  egress: {}
  public: {}
"""
    assert not rules_for(tmp_path, text) & {"SG103", "SG105", "SG109"}


def test_node_red_on_the_default_bridge(tmp_path: Path) -> None:
    text = "services:\n  nr:\n    image: nodered/node-red:4.0.9\n    network_mode: bridge\n"
    assert "SG103" in rules_for(tmp_path, text)


def test_service_inside_node_reds_namespace(tmp_path: Path) -> None:
    text = """\
services:
  nr: {image: nodered/node-red:4.0.9, networks: [internal]}
  sidecar: {image: x/sidecar:1, network_mode: "service:nr"}
networks:
  internal: {internal: true}
"""
    assert "SG105" in rules_for(tmp_path, text, "sidecar")


def test_roles_by_x_stackgen_override_the_image(tmp_path: Path) -> None:
    text = """\
services:
  flows:
    image: example/custom-flows:1
    ports: ["1880:1880"]
    x-stackgen: {role: node-red}
"""
    assert "SG102" in rules_for(tmp_path, text)


def test_key_directory_bind_shared_with_another_service(tmp_path: Path) -> None:
    text = """\
services:
  certbot: {image: certbot/certbot:v2.11.0, volumes: ["./le:/etc/letsencrypt"]}
  edge: {image: nginx:1.27, volumes: ["./le:/etc/nginx/certs:ro"]}
  app: {image: x/app:1, volumes: ["./le/live:/live:ro"]}
  backup: {image: x/backup:1, volumes: [".:/project:ro"]}
"""
    found = findings(tmp_path, text)
    assert sorted(f.service for f in found if f.rule == "SG106") == ["app", "backup"]
    assert not [f for f in found if f.rule == "SG107"]


def test_traefik_upstream_without_a_shared_network(tmp_path: Path) -> None:
    text = """\
services:
  traefik: {image: traefik:v3.1, networks: [public]}
  app:
    image: x/app:1
    networks: [back]
    labels: {traefik.enable: "true", traefik.http.routers.app.rule: "Host(`a.example`)"}
networks:
  public: {}
  back: {internal: true}
"""
    found = [f for f in findings(tmp_path, text) if f.rule == "SG110"]
    assert [(f.service, f.message) for f in found] == [("traefik", "proxies to app but shares no network with it")]


def test_shared_writable_volume_but_not_single_writer(tmp_path: Path) -> None:
    text = """\
services:
  a: {image: x/a:1, volumes: ["shared:/s", "one:/o"]}
  b: {image: x/b:1, volumes: ["shared:/s", "one:/o:ro"]}
volumes: {shared: {}, one: {}}
"""
    found = [f for f in findings(tmp_path, text) if f.rule == "SG040"]
    assert sorted(f.service for f in found) == ["a", "b"]
    assert all("shared" in f.message for f in found)


def test_capabilities_with_prefix_and_case(tmp_path: Path) -> None:
    text = (
        "services:\n  a:\n    image: x/a:1\n    cap_drop: [all]\n"
        "    cap_add: [cap_sys_admin, CAP_NET_ADMIN, NET_BIND_SERVICE]\n"
    )
    found = rules_for(tmp_path, text)
    assert {"SG013", "SG014"} <= found and "SG012" not in found


def test_security_opt_spellings(tmp_path: Path) -> None:
    text = (
        "services:\n  a:\n    image: x/a:1\n"
        "    security_opt: ['no-new-privileges=true', 'seccomp=unconfined', 'label:disable']\n"
    )
    found = [f for f in findings(tmp_path, text) if f.rule in ("SG011", "SG015")]
    assert sorted(f.rule for f in found) == ["SG015", "SG015"]


def test_suppression_by_rule_name_and_top_level(tmp_path: Path) -> None:
    text = """\
x-stackgen:
  ignore:
    - {rule: SG029, reason: "CPU is shared on purpose"}
    - {rule: no-healthcheck, service: a, reason: "image has its own HEALTHCHECK"}
services:
  a:
    image: x/a:1
    user: root
    x-stackgen:
      ignore: [{rule: root-user, reason: "needs to bind port 80 in a legacy image"}]
  b: {image: x/b:1}
"""
    path = tmp_path / "compose.yaml"
    path.write_text(text)
    result = verify([path], environ={})
    by = {(f.service, f.rule): f for f in result.findings}
    assert by[("a", "SG018")].suppressed and by[("a", "SG018")].suppression_kind == "service"
    assert by[("a", "SG029")].suppressed and by[("b", "SG029")].suppressed
    assert by[("a", "SG031")].suppressed and not by[("b", "SG031")].suppressed
    assert by[("a", "SG031")].suppression_reason == "image has its own HEALTHCHECK"
