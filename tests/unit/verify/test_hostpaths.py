"""Sensitive host paths are a precise list, not every path under /var (issue 11, part 3)."""

from __future__ import annotations

import pytest

from stackgen.verify.rules._hostpaths import root_equivalent, sensitive


@pytest.mark.parametrize("path", ["/", "/etc", "/etc/passwd", "/proc", "/sys", "/boot", "/root", "/home", "/home/alice",
                                  "/home/alice/.ssh", "/var/run", "/var/run/docker.sock", "/run", "/var/lib/docker",
                                  "/var/lib/containerd", "/var/log", "/var", "/var/lib", "/usr", "/lib", "/dev"])
def test_host_paths_that_disclose_the_host_are_sensitive(path):
    assert sensitive(path)


@pytest.mark.parametrize("path", ["/var/lib/postgresql", "/var/lib/pg", "/srv/app/data", "/opt/nodered",
                                  "/mnt/data/media", "/var/www/html", "/usr/share/nginx/html"])
def test_application_data_directories_are_not(path):
    assert not sensitive(path) and not root_equivalent(path)
