"""What a host path gives a container that mounts it; shared by the mount rules.

Why one place: the socket rule, the root rule, the sensitive-path rule and the
writable-system-path rule must agree on which rule owns which path, so that
one mount yields one finding, not four.
"""

from __future__ import annotations

import os
import posixpath

# Container-engine control sockets, and the directories that hold them.
SOCKET_NAMES = {"docker.sock", "containerd.sock", "podman.sock", "crio.sock", "cri-dockerd.sock", "buildkitd.sock"}
SOCKET_DIRS = {
    "/run",
    "/var/run",
    "/run/docker",
    "/var/run/docker",
    "/run/containerd",
    "/var/run/containerd",
    "/run/podman",
    "/var/run/podman",
    "/run/crio",
    "/var/run/crio",
    "/run/user",
    "/run/k3s/containerd",
}
WINDOWS_PIPE = "\\\\.\\pipe\\docker_engine"

# Writable, these give root on the host (cron, sudoers, kernel modules, binaries, the engine's state).
ROOT_EQUIVALENT_TREES = (
    "/etc",
    "/root",
    "/boot",
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/usr/local/bin",
    "/usr/local/sbin",
    "/lib/modules",
    "/usr/lib/modules",
    "/var/lib/docker",
    "/var/lib/containerd",
    "/var/lib/kubelet",
    "/var/spool/cron",
    "/proc",
    "/sys",
    "/dev",
)
ROOT_EQUIVALENT_EXACT = {"/", "/usr", "/usr/lib", "/usr/local", "/lib", "/lib64", "/var", "/var/lib", "/home"}

# Even read-only, these disclose or expose the host. Precise on purpose: /var/lib/postgres or
# /srv/app/data are where applications keep their data (ROOT_EQUIVALENT_EXACT still names /var,
# /var/lib, /usr, /lib and /home themselves).
SENSITIVE_TREES = ROOT_EQUIVALENT_TREES + ("/var/log", "/var/run", "/run", "/mnt/wsl")
SECRET_DIRS = {".ssh", ".aws", ".docker", ".kube", ".gnupg", ".password-store", ".azure", ".gcloud", ".netrc"}

# Harmless when read-only: time zone, CA bundles, the null devices.
BENIGN_READ_ONLY = {
    "/etc/localtime",
    "/etc/timezone",
    "/etc/ssl/certs",
    "/etc/pki/ca-trust",
    "/etc/ca-certificates",
    "/usr/share/ca-certificates",
    "/usr/share/zoneinfo",
    "/etc/hostname",
    "/etc/machine-id",
    "/dev/null",
    "/dev/zero",
    "/dev/random",
    "/dev/urandom",
    "/dev/full",
}


def norm(path: str) -> str:
    """Normalised absolute host path (`/var/run/` -> `/var/run`)."""
    if not path:
        return path
    out = posixpath.normpath(path)
    return "/" if out in ("/", "//") else out


def under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def is_socket(path: str) -> bool:
    """The engine's control socket, or a directory that contains it."""
    path = norm(path)
    return posixpath.basename(path) in SOCKET_NAMES or path in SOCKET_DIRS or path.lower() == WINDOWS_PIPE.lower()


def is_benign(path: str) -> bool:
    path = norm(path)
    return any(under(path, b) for b in BENIGN_READ_ONLY)


def home_secret(path: str) -> bool:
    """A whole home directory, or a credentials directory inside one (`~/.ssh`, `~/.docker`)."""
    parts = [p for p in norm(path).split("/") if p]
    if parts[:1] == ["home"] and len(parts) <= 2:
        return True
    return any(p in SECRET_DIRS for p in parts)


def root_equivalent(path: str) -> bool:
    """Writable, this path gives root on the host."""
    path = norm(path)
    if path in ROOT_EQUIVALENT_EXACT:
        return True
    return any(under(path, tree) for tree in ROOT_EQUIVALENT_TREES) or home_secret(path)


def sensitive(path: str) -> bool:
    """Even read-only, this path discloses or exposes the host."""
    path = norm(path)
    if path in ROOT_EQUIVALENT_EXACT:
        return True
    return any(under(path, tree) for tree in SENSITIVE_TREES) or home_secret(path)


def shown(path: str | None) -> str:
    """A host path as a person reads it: `./letsencrypt` for paths below the working directory."""
    if not path:
        return str(path)
    cwd = os.getcwd()
    if cwd != "/" and (path == cwd or path.startswith(cwd.rstrip("/") + "/")):
        return "./" + os.path.relpath(path, cwd) if path != cwd else "."
    return path
