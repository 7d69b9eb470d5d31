"""Compose files -> `Topology`, the way `docker compose config` reads them.

Pipeline, as in Compose: for each `-f` file: parse, interpolate (`.env` and the
shell), rewrite short syntaxes to long ones, resolve `extends`; merge the files
in order (Compose's merge rules: mappings merge, `command`/`entrypoint`/
`healthcheck.test` are replaced, `ports`/`volumes`/`secrets`/`configs` are
unique by key, other sequences append without duplicates); then `include`,
profiles, the default network and names. `build_topology` turns the resulting
canonical model into a `Topology`; it also accepts `docker compose config
--format json` output, which is how the tests hold this loader to the reference.

Why in Python and not by calling the binary: speed (the binary alone costs
~0.15 s) and positions (the binary loses them; every finding needs file:line).

This module holds the entry points and the reading of files (`include`, `extends`); each step
has its own module beside it: `paths`, `schema` (types checked before reading), `fragments`,
`canonical` (short -> long syntax), `merge`, `finalise`, `to_topology`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from stackgen.composefile.canonical import _canonicalise_file
from stackgen.composefile.env import MISSING_CONTEXT, chain, interpolate, note_missing_context, read_dotenv
from stackgen.composefile.finalise import _finalise
from stackgen.composefile.fragments import _check_top, _fragment_as_compose
from stackgen.composefile.merge import _apply_profiles, _merge_service, _merge_top
from stackgen.composefile.node_red_settings import attach_node_red_settings
from stackgen.composefile.paths import _HOME, DEFAULT_FILES, _display, _real, find_compose_files
from stackgen.composefile.to_topology import build_topology, from_compose_json, parse_bytes
from stackgen.composefile.yaml_loader import ComposeError, PMap, parse_yaml, pos_of
from stackgen.topology import Source, Topology

__all__ = [
    "DEFAULT_FILES",
    "find_compose_files",
    "load_compose",
    "load_model",
    "build_topology",
    "from_compose_json",
    "parse_bytes",
]


# --- entry points -------------------------------------------------------------


def load_compose(
    files: Sequence[str | Path],
    env_files: Sequence[str | Path] = (),
    profiles: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    project_dir: str | Path | None = None,
) -> Topology:
    """Load, merge and normalise compose files into a `Topology`.

    `environ` defaults to the process environment (tests pass their own);
    `env_files` replaces the project's `.env` as `docker compose --env-file` does.
    Raises `ComposeError` (with file:line:col when known) on anything Compose would refuse.
    """
    notes: list = []
    token = MISSING_CONTEXT.set(notes)
    try:
        model, names = load_model(files, env_files, profiles, environ, project_dir)
    finally:
        MISSING_CONTEXT.reset(token)
    topo = build_topology(model, names)
    topo.missing_context = list(notes)
    attach_node_red_settings(topo, model, Path(project_dir) if project_dir else _real(Path(files[0])).parent)
    return topo


def load_model(
    files: Sequence[str | Path],
    env_files: Sequence[str | Path] = (),
    profiles: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
    project_dir: str | Path | None = None,
) -> tuple[PMap, tuple[str, ...]]:
    """The merged canonical model (like `docker compose config`) and the display names of its files."""
    if not files:
        raise ComposeError("no compose file given, and none found (compose.yaml, docker-compose.yml, ...)")
    paths = [Path(f) for f in files]
    project = Path(project_dir) if project_dir else _real(paths[0]).parent
    environ = dict(os.environ if environ is None else environ)
    _HOME[0] = environ.get("HOME")
    dotenv = _project_dotenv(project, env_files, environ)
    lookup = chain(environ, dotenv)
    loader = _Loader(lookup, environ)
    model = loader.load_files(paths, project)
    active = set(profiles)
    env_profiles = lookup("COMPOSE_PROFILES")
    if env_profiles:
        active |= {p.strip() for p in env_profiles.split(",") if p.strip()}
    _apply_profiles(model, active)
    _finalise(model, project, lookup("COMPOSE_PROJECT_NAME"))
    return model, tuple(loader.displayed)


def _project_dotenv(
    project: Path, env_files: Sequence[str | Path], environ: Mapping[str, str]
) -> dict[str, str | None]:
    values: dict[str, str | None] = {}
    if env_files:
        for env_file in env_files:
            values.update(read_dotenv(Path(env_file), chain(environ, values), _display(Path(env_file))))
        return values
    default = project / ".env"
    if default.is_file():
        values = read_dotenv(default, chain(environ), _display(default))
    return values


# --- loading files -------------------------------------------------------------


MAX_INCLUDE_DEPTH = 32


class _Loader:
    """Carries the variable lookup and the list of files read, across files and `extends`."""

    def __init__(self, lookup: Callable[[str], str | None], environ: Mapping[str, str]) -> None:
        self.lookup = lookup
        self.environ = environ
        self.displayed: list[str] = []
        self._cache: dict[Path, PMap] = {}
        self.including: tuple[Path, ...] = ()  # the chain of files whose `include` led here

    def read(self, path: Path, base: Path) -> PMap:
        """One file: parse, check it is compose, interpolate, canonicalise, resolve `extends`."""
        key = _real(path)
        if key in self._cache:
            return self._cache[key]
        display = _display(path)
        if display not in self.displayed:
            self.displayed.append(display)
        docs = parse_yaml(path, display=display)
        if not docs:
            raise ComposeError("empty compose file", display, 1, 1)
        merged: PMap | None = None
        for doc in docs:
            doc = _fragment_as_compose(doc, path)
            _check_top(doc, display)
            interpolate(doc, self.lookup, doc.pos)
            _canonicalise_file(doc, base, self.lookup)
            merged = doc if merged is None else _merge_top(merged, doc)
        assert merged is not None
        self._cache[key] = merged
        self._resolve_extends(merged, path, base)
        return merged

    def load_files(self, paths: list[Path], project: Path, top: bool = True) -> PMap:
        model: PMap | None = None
        for path in paths:
            doc = self.read(path, project)
            doc = self._include(doc, path)
            model = doc if model is None else _merge_top(model, doc)
        assert model is not None
        if top and "services" not in model:
            # Compose accepts a file of networks, volumes or `name:` alone (an `include` target, say).
            first = self.displayed[0] if self.displayed else None
            message = "not a compose file: no `services:` section"
            if not note_missing_context("no `services:` section: no service to judge (Compose takes the file as a "
                                        "project without services)", Source(first or "", 1, 1)):
                raise ComposeError(message, first, 1, 1)
        return model

    def _include(self, doc: PMap, path: Path) -> PMap:
        entries = doc.pop("include", None)
        if not entries:
            return doc
        if not isinstance(entries, list):
            raise ComposeError.at(pos_of(doc, "include"), "`include` must be a list")
        for idx, entry in enumerate(entries):
            where = pos_of(entries, idx)
            if isinstance(entry, str):
                entry = {"path": entry}
            if not isinstance(entry, Mapping) or "path" not in entry:
                raise ComposeError.at(where, "an `include` entry needs a `path`")
            sub_paths = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
            sub_files = [(path.parent / str(p)) for p in sub_paths]
            chain_so_far = self.including + (_real(path),)
            for sub_file in sub_files:
                if _real(sub_file) in chain_so_far:
                    cycle = " -> ".join(_display(p) for p in (*chain_so_far, _real(sub_file)))
                    raise ComposeError.at(where, f"`include` cycle: {cycle}")
            if len(chain_so_far) > MAX_INCLUDE_DEPTH:
                raise ComposeError.at(where, f"`include` nested more than {MAX_INCLUDE_DEPTH} levels deep")
            sub_project = path.parent / str(entry.get("project_directory") or Path(str(sub_paths[0])).parent)
            sub_env: dict[str, str | None] = {}
            env_files = entry.get("env_file")
            if env_files:
                for env_file in env_files if isinstance(env_files, list) else [env_files]:
                    sub_env.update(read_dotenv(path.parent / str(env_file), chain(self.environ, sub_env)))
            elif (sub_project / ".env").is_file():
                sub_env = read_dotenv(sub_project / ".env", chain(self.environ))
            parent = self.lookup

            def sub_lookup(name: str, _env: dict = sub_env, _parent: Callable = parent) -> str | None:
                value = self.environ.get(name)
                if value is None:
                    value = _env.get(name)
                return _parent(name) if value is None else value

            sub = _Loader(sub_lookup, self.environ)
            sub.displayed = self.displayed
            sub.including = chain_so_far
            sub_model = sub.load_files(sub_files, _real(sub_project), top=False)
            for section in ("services", "networks", "volumes", "secrets", "configs"):
                incoming = sub_model.get(section)
                if not isinstance(incoming, PMap):
                    continue
                target = doc.setdefault(section, PMap(pos=incoming.pos))
                if not isinstance(target, PMap):
                    continue
                for name, value in incoming.items():
                    if name in target and section == "services":
                        raise ComposeError.at(
                            pos_of(target, name), f"service {name!r} conflicts with one imported by `include`"
                        )
                    if name not in target:
                        target[name] = value
                        target.kpos[name] = incoming.kpos.get(name, where)
        return doc

    def _resolve_extends(self, doc: PMap, path: Path, base: Path) -> None:
        services = doc.get("services")
        if not isinstance(services, PMap):
            return
        done: set[str] = set()
        for name in list(services):
            self._extend(services, name, path, base, done, ())

    def _extend(self, services: PMap, name: str, path: Path, base: Path, done: set[str], stack: tuple) -> PMap:
        svc = services[name]
        if name in done or "extends" not in svc:
            done.add(name)
            return svc
        ext = svc["extends"]
        where = pos_of(svc, "extends")
        marker = (str(_real(path)), name)
        if marker in stack:
            raise ComposeError.at(where, f"circular `extends` reaching service {name!r}")
        target = ext.get("service")
        if not isinstance(target, str):
            raise ComposeError.at(where, "`extends` needs a `service`")
        if ext.get("file"):
            other = _real(path.parent / str(ext["file"]))
            other_doc = self.read(other, other.parent)
            other_services = other_doc.get("services") or PMap()
            if target not in other_services:
                raise ComposeError.at(where, f"cannot extend service {target!r}: not found in {ext['file']}")
            parent = self._extend(other_services, target, other, other.parent, set(), stack + (marker,))
        else:
            if target not in services:
                raise ComposeError.at(where, f"cannot extend service {target!r}: no such service in this file")
            parent = self._extend(services, target, path, base, done, stack + (marker,))
        own = PMap(pos=svc.pos)
        for key, value in svc.items():
            if key != "extends":
                own[key] = value
                own.kpos[key] = svc.kpos.get(key, svc.pos)
                if key in svc.tags:
                    own.tags[key] = svc.tags[key]
        inherited = PMap(pos=parent.pos)
        for key, value in parent.items():
            if key not in ("depends_on", "links", "volumes_from"):
                inherited[key] = value
                inherited.kpos[key] = parent.kpos.get(key, parent.pos)
        merged = _merge_service(inherited, own)
        merged.pos = svc.pos
        services[name] = merged
        done.add(name)
        return merged

