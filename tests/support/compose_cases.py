"""Compose scenarios shared by the loader tests and the reference test against `docker compose config`.

Each case: files to write (path -> text), the `-f` files in order, and optional
profiles / env files / environment. The reference test loads every case with
both stackgen's loader and the real Compose binary and compares the Topologies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Case:
    files: dict[str, str]
    compose: list[str] = field(default_factory=lambda: ["compose.yaml"])
    profiles: list[str] = field(default_factory=list)
    env_files: list[str] = field(default_factory=list)
    environ: dict[str, str] = field(default_factory=dict)

    def write(self, root: Path) -> list[Path]:
        for rel, text in self.files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return [root / f for f in self.compose]


CASES: dict[str, Case] = {
    "multi-file-merge": Case(
        files={
            "compose.yaml": """\
services:
  app:
    image: example/app:1.0
    user: "1000"
    cap_add: [CHOWN, NET_ADMIN]
    cap_drop: [ALL]
    ports: ["8080:80", "127.0.0.1:8081:81"]
    volumes: ["./data:/data", "cache:/cache:ro"]
    environment: [A=1, B=2]
    labels: {tier: web}
    security_opt: ["no-new-privileges:true"]
    logging: {driver: json-file, options: {max-size: 1m}}
    healthcheck: {test: [CMD, probe, one], interval: 10s}
    command: [serve, --port, "80"]
    tmpfs: /tmp
  db:
    image: postgres:16
    networks: [back]
volumes:
  cache: {}
networks:
  back: {internal: true}
""",
            "compose.override.yaml": """\
services:
  app:
    user: "2000:2000"
    cap_add: [CHOWN, SYS_TIME]
    ports: ["8080:80", "9090:90/udp"]
    volumes: ["./other:/data:ro"]
    environment: {B: "3", C: "4"}
    labels: [owner=ops]
    security_opt: ["seccomp:unconfined"]
    logging: {driver: syslog}
    healthcheck: {test: [CMD, probe, two]}
    command: [serve]
    tmpfs: [/run]
    read_only: true
  db:
    networks: [front]
networks:
  front: {}
""",
        },
        compose=["compose.yaml", "compose.override.yaml"],
    ),
    "interpolation": Case(
        files={
            "compose.yaml": """\
name: ${PROJECT:-interp}
services:
  app:
    image: "example/app:${TAG-1.2.3}"
    user: "${APP_UID:?APP_UID must be set}:${APP_GID:-1000}"
    ports: ["${BIND:-127.0.0.1}:${PORT:-8080}:80"]
    environment:
      UNSET: "${NOPE}"
      SHELL_WINS: "$FROM_BOTH"
      FROM_DOTENV: "${ONLY_DOTENV}"
      NESTED: "${MISSING:-${ONLY_DOTENV}-x}"
      EMPTY_COLON: "${EMPTY:-fallback}"
      EMPTY_PLAIN: "${EMPTY-fallback}"
      ALT: "${ONLY_DOTENV:+alt}"
      ALT_UNSET: "${NOPE+alt}"
      ESCAPED: "$${NOT_A_VAR} costs $$5"
      SINGLE_QUOTED: "${SQ}"
      DOUBLE_QUOTED: "${DQ}"
      COMMENTED: "${WITH_COMMENT}"
    read_only: ${RO:-true}
""",
            ".env": """\
# comments and blank lines are ignored

ONLY_DOTENV=dotenv-value
FROM_BOTH=from-dotenv
APP_UID=1500
EMPTY=
SQ='literal $ONLY_DOTENV'
DQ="expanded ${ONLY_DOTENV}"
export WITH_COMMENT=value # trailing comment
""",
        },
        environ={"FROM_BOTH": "from-shell", "TAG": "9.9.9"},
    ),
    "env-file-option": Case(
        files={
            "compose.yaml": """\
services:
  app:
    image: "example/app:${TAG}"
    environment:
      LEVEL: ${LEVEL:-info}
""",
            ".env": "TAG=from-dotenv\n",
            "prod.env": "TAG=from-prod\nLEVEL=warn\n",
        },
        env_files=["prod.env"],
    ),
    "service-env-file": Case(
        files={
            "compose.yaml": """\
services:
  app:
    image: example/app:1
    env_file: [app.env]
    environment:
      OVERRIDDEN: by-environment
""",
            "app.env": "FROM_FILE=yes\nOVERRIDDEN=by-file\nDB_PASSWORD=hunter2\n",
        },
    ),
    "profiles": Case(
        files={
            "compose.yaml": """\
services:
  always:
    image: example/always:1
  debug:
    image: example/debug:1
    profiles: [debug]
  tools:
    image: example/tools:1
    profiles: [tools, ops]
""",
        },
        profiles=["debug"],
    ),
    "profiles-from-env": Case(
        files={
            "compose.yaml": """\
services:
  always:
    image: example/always:1
  tools:
    image: example/tools:1
    profiles: [ops]
""",
        },
        environ={"COMPOSE_PROFILES": "ops"},
    ),
    "extends": Case(
        files={
            "compose.yaml": """\
services:
  base:
    image: example/base:1
    user: "1000"
    cap_drop: [ALL]
    volumes: ["./shared:/shared:ro"]
    environment: {LEVEL: info}
  child:
    extends: base
    user: "2000"
    volumes: ["./own:/own"]
    environment: {EXTRA: "1"}
  remote:
    extends:
      file: common/base.yaml
      service: hardened
    image: example/remote:2
""",
            "common/base.yaml": """\
services:
  hardened:
    image: example/hardened:1
    read_only: true
    security_opt: ["no-new-privileges:true"]
    volumes: ["./relative-to-common:/data"]
""",
        },
    ),
    "anchors-and-extensions": Case(
        files={
            "compose.yaml": """\
x-hardening: &hardening
  read_only: true
  cap_drop: [ALL]
  security_opt: ["no-new-privileges:true"]
  restart: unless-stopped
x-logging: &logging
  driver: json-file
  options: {max-size: 10m, max-file: "3"}
services:
  one:
    <<: *hardening
    image: example/one:1
    logging: *logging
  two:
    <<: *hardening
    image: example/two:1
    restart: "no"
    logging: *logging
""",
        },
    ),
    "reset-and-override": Case(
        files={
            "compose.yaml": """\
services:
  app:
    image: example/app:1
    ports: ["8080:80"]
    cap_add: [NET_ADMIN]
    environment: {A: "1", B: "2"}
""",
            "override.yaml": """\
services:
  app:
    ports: !reset []
    cap_add: !override [CHOWN]
    environment: !override {C: "3"}
""",
        },
        compose=["compose.yaml", "override.yaml"],
    ),
    "syntax-variants": Case(
        files={
            "compose.yaml": """\
services:
  app:
    image: example/app@sha256:4c5e6d7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d
    ports:
      - "3000-3002:3000-3002"
      - "[::1]:4000:4000"
      - "5000"
      - 6000:6000/udp
      - target: 7000
        published: "7001"
        host_ip: 10.0.0.1
        protocol: tcp
    volumes:
      - type: bind
        source: ./conf
        target: /etc/app
        read_only: true
        bind: {propagation: rshared}
      - type: volume
        source: data
        target: /data
      - type: tmpfs
        target: /scratch
      - /anonymous
      - ~/dotfiles:/home/app/dotfiles:ro,z
    devices: ["/dev/ttyUSB0", "/dev/sda:/dev/xvda:r"]
    tmpfs: ["/tmp:exec,size=10m"]
    healthcheck:
      test: curl -f http://localhost/ || exit 1
    deploy:
      resources:
        limits: {memory: 256M, cpus: "0.75", pids: 50}
      restart_policy: {condition: on-failure}
    network_mode: bridge
    pid: host
    ipc: host
    userns_mode: host
    cgroup_parent: /custom
    group_add: [dialout, "1500"]
    secrets: [token, {source: key, target: /etc/app/key}]
  side:
    image: example/side:1
    network_mode: "service:app"
    mem_limit: 1g
    cpus: 1.5
    pids_limit: 64
    restart: always
    logging: {driver: none}
    uts: host
    labels: ["a=1", "b"]
volumes:
  data: {}
secrets:
  token: {file: ./token.txt}
  key: {file: ./key.pem}
""",
        },
    ),
    "include": Case(
        files={
            "compose.yaml": """\
include:
  - monitoring/compose.yaml
services:
  app:
    image: example/app:1
""",
            "monitoring/compose.yaml": """\
services:
  grafana:
    image: grafana/grafana:11.1.0
    volumes: ["./dashboards:/etc/dashboards:ro"]
""",
        },
    ),
    "networks-and-volumes": Case(
        files={
            "compose.yaml": """\
name: NetVol_Test
services:
  a:
    image: example/a:1
    networks:
      inner:
        aliases: [alias-a]
      outer:
  b:
    image: example/b:1
    volumes: [named:/data, "ext:/ext"]
networks:
  inner: {internal: true}
  outer: {name: shared-outer}
  unused: {external: true}
volumes:
  named: {}
  ext: {external: true}
""",
        },
    ),
}
