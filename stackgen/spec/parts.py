"""The stack's own settings around its Node-RED instances: certificates (`Tls`), published ports, image overrides
and log rotation."""

from __future__ import annotations

import ipaddress
import posixpath
from typing import Self

from pydantic import Field, field_validator, model_validator

from stackgen.spec.base import (
    _ACME_URL,
    _SAFE_PATH,
    _SIZE,
    LETS_ENCRYPT,
    LETS_ENCRYPT_STAGING,
    DnsProvider,
    FieldError,
    StrictModel,
    TlsMode,
    _image,
)


class Tls(StrictModel):
    """How the certificate and its private key are obtained, and by whom."""

    mode: TlsMode = Field(
        "certbot-http01",
        description=(
            "certbot-http01: a certbot sidecar obtains the certificate by HTTP-01 through the edge (default). "
            "certbot-dns01: certbot by DNS-01 (needed for wildcards). "
            "edge-acme: Caddy/Traefik obtain it themselves; trade-off: the internet-facing edge then holds the key. "
            "internal: a local CA in the sidecar (LAN only, browsers must trust its root). "
            "files: bring your own certificate and key."
        ),
    )
    acme_directory: str | None = Field(
        None,
        description="ACME directory URL. Default: Let's Encrypt (or its staging with `staging: true`). Any URL for a private CA.",
    )
    staging: bool = Field(False, description="Use Let's Encrypt's staging directory (untrusted certificates, generous rate limits).")
    ca_bundle: str | None = Field(
        None,
        description="PEM file (relative to the stack directory) of CA certificates trusted for the ACME directory's TLS: "
        "a private CA such as step-ca or pebble.",
    )
    dns_provider: DnsProvider | None = Field(None, description="certbot DNS plugin for certbot-dns01 (those with an official certbot/dns-* image).")
    dns_credentials_file: str | None = Field(
        None,
        description="certbot-dns01: the DNS plugin's credentials file (mounted as a compose secret, never copied into compose.yaml). "
        "route53: an AWS shared credentials file (boto3 reads it; the plugin has no credentials option). "
        "certbot reads it as uid 0 without capabilities, so `generate` makes it root-owned, mode 0600 (when run as root; else it says how).",
    )
    cert_file: str | None = Field(None, description="files mode: PEM certificate chain.")
    key_file: str | None = Field(None, description="files mode: PEM private key.")
    renew_interval_hours: int = Field(12, ge=1, le=24, description="How often the sidecar checks for renewal.")

    @field_validator("acme_directory")
    @classmethod
    def _https_url(cls, value: str | None) -> str | None:
        if value is not None and not _ACME_URL.fullmatch(value):
            raise ValueError("must be an https:// URL of letters, digits and . _ ~ % / + = , - (no quotes, spaces, $, {}, ;)")
        return value

    @field_validator("cert_file", "key_file", "ca_bundle", "dns_credentials_file")
    @classmethod
    def _safe_path(cls, value: str | None) -> str | None:
        if value is not None and not _SAFE_PATH.fullmatch(value):
            raise ValueError("a path of letters, digits and . _ / + @ - only (it reaches configuration files and scripts)")
        return value

    @model_validator(mode="after")
    def _mode_requirements(self) -> Self:
        if self.mode == "certbot-dns01" and (self.dns_provider is None or self.dns_credentials_file is None):
            missing = "dns_provider" if self.dns_provider is None else "dns_credentials_file"
            raise FieldError((missing,), "certbot-dns01 needs dns_provider and dns_credentials_file")
        if self.mode == "files" and (self.cert_file is None or self.key_file is None):
            raise FieldError(("cert_file" if self.cert_file is None else "key_file",), "files mode needs cert_file and key_file")
        if self.mode == "files":
            for name in ("cert_file", "key_file"):
                parent = posixpath.dirname(posixpath.normpath(getattr(self, name)))
                if parent in ("", ".", "/"):
                    raise FieldError(
                        (name,),
                        "must be inside a directory of its own, such as tls/fullchain.pem: the edge mounts that "
                        "directory read-only (a mounted single file never sees a renewal that replaces it), and "
                        "the stack directory or / must not be mounted into the edge",
                    )
        if self.mode != "files" and (self.cert_file or self.key_file):
            raise FieldError(("cert_file" if self.cert_file else "key_file",), "cert_file/key_file are only used in files mode")
        if self.staging and self.acme_directory is not None:
            raise FieldError(("staging",), "staging and acme_directory are exclusive: staging selects Let's Encrypt's staging directory")
        return self

    @property
    def directory_url(self) -> str:
        """The ACME directory actually used."""
        if self.acme_directory:
            return self.acme_directory
        return LETS_ENCRYPT_STAGING if self.staging else LETS_ENCRYPT

    @property
    def uses_certbot(self) -> bool:
        """True when the certbot sidecar talks to an ACME CA."""
        return self.mode in ("certbot-http01", "certbot-dns01")

    @property
    def uses_sidecar(self) -> bool:
        """True when a separate container (not the edge) writes the key."""
        return self.mode in ("certbot-http01", "certbot-dns01", "internal")


class Ports(StrictModel):
    """Where the edge listens on the host."""

    bind_address: str = Field("0.0.0.0", description="Host address the edge's ports are published on (0.0.0.0 = every interface).")
    http: int = Field(80, ge=1, le=65535, description="Host port for HTTP (redirects to HTTPS; serves the ACME challenge).")
    https: int = Field(443, ge=1, le=65535, description="Host port for HTTPS.")

    @field_validator("bind_address")
    @classmethod
    def _ip(cls, value: str) -> str:
        if "%" in value:
            # Python accepts any text as an IPv6 scope (`fe80::1%$(id)`); Docker takes no scope in a port binding.
            raise ValueError(f"{value!r}: an address with a scope (%zone) cannot be a published port's host address")
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if self.http == self.https:
            raise FieldError(("https",), f"http and https cannot share port {self.http}")
        return self


class Images(StrictModel):
    """Image overrides per service: a tag or a digest. Unset means stackgen's pinned default."""

    node_red: str | None = Field(None, description="Node-RED image.")
    edge: str | None = Field(None, description="Edge image (Caddy, NGINX or Traefik, as `edge` says).")
    certbot: str | None = Field(None, description="Certificate sidecar image (certbot, or its DNS-plugin variant).")

    _check = field_validator("node_red", "edge", "certbot")(classmethod(lambda cls, v: _image(v)))


class Logging(StrictModel):
    """Container log rotation (json-file). Unset values depend on platform: SD cards wear out."""

    max_size: str | None = Field(None, description="Size of one log file before rotation, such as 10m.")
    max_files: int | None = Field(None, ge=1, le=20, description="Rotated files kept per container.")

    @field_validator("max_size")
    @classmethod
    def _size(cls, value: str | None) -> str | None:
        if value is not None and not _SIZE.fullmatch(value):
            raise ValueError("must be a size such as 10m")
        return value


class Swarm(StrictModel):
    """Settings of compose.swarm.yaml alone (`target: swarm`); compose.yaml does not read them."""

    encrypted_overlays: bool = Field(
        True,
        description="Encrypt the stack's overlay networks between nodes (IPsec ESP; on by default). Every node's kernel needs "
        "IPsec ESP (CONFIG_INET_ESP): where a node lacks it, Swarm still deploys, but the overlays carry no traffic between "
        "that node and the others (docs/swarm.md). false: the traffic between nodes (the edge to each Node-RED: passwords, "
        "session tokens, flows) crosses the network between the nodes unencrypted (plain VXLAN); only where that network is "
        "yours alone. One node sends nothing between nodes either way.",
    )
