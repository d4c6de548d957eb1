"""The node's registries configuration, shaped like k3s' ``registries.yaml``: mirrors, auth, TLS.

Owns parsing and validating ``/etc/shoal/registries.yaml`` (or ``$SHOAL_REGISTRIES_CONFIG``) into
frozen data, and the pure questions asked of it: which endpoints to try for a registry (mirrors in
order, then the origin), whether a host is reached over plain HTTP, and which auth/TLS settings
apply to a host. Every error names the file and the key path and says how to fix it. It must not
open network connections (registry.py does) nor read the login file (credentials.py does)::

    mirrors:
      docker.io:
        endpoints: ["https://mirror.local:5000"]
    configs:
      mirror.local:5000:
        auth: {username: edge, password: s3cret}
        tls: {insecure_skip_verify: false, ca_file: /etc/shoal/mirror-ca.pem}
    insecure: ["registry.lan:5000"]
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shoal.image.auth import Credentials
from shoal.image.errors import ImageError
from shoal.image.reference import is_loopback

DEFAULT_PATH = "/etc/shoal/registries.yaml"
ENV_PATH = "SHOAL_REGISTRIES_CONFIG"
_TOP_KEYS = ("mirrors", "configs", "insecure")


class RegistryConfigError(ImageError):
    """registries.yaml is malformed; the message names the file, the key and the fix."""


@dataclass(frozen=True, slots=True)
class TLSSettings:
    insecure_skip_verify: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None


@dataclass(frozen=True, slots=True)
class HostConfig:
    credentials: Credentials | None = None
    tls: TLSSettings = TLSSettings()


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One place to ask for a registry's content: ``url`` is ``scheme://host[:port]``."""

    url: str
    host: str
    is_mirror: bool


@dataclass(frozen=True, slots=True)
class RegistriesConfig:
    mirrors: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    hosts: Mapping[str, HostConfig] = field(default_factory=dict)
    insecure: frozenset[str] = frozenset()
    source: str = "<defaults>"

    def host(self, host: str) -> HostConfig:
        return self.hosts.get(host, HostConfig())

    def plain_http(self, host: str, extra_insecure: frozenset[str] = frozenset()) -> bool:
        """Plain HTTP for loopback registries (as Docker does) and ones listed as insecure."""
        return is_loopback(host) or host in self.insecure or host in extra_insecure

    def endpoints(self, registry: str, extra_insecure: frozenset[str] = frozenset()) -> list[Endpoint]:
        """Mirrors of ``registry`` in the configured order (``*`` applies to all), then the origin."""
        urls = self.mirrors.get(registry, self.mirrors.get("*", ()))
        out = [Endpoint(u, urlsplit(u).netloc, True) for u in urls]
        api = "registry-1.docker.io" if registry == "docker.io" else registry
        scheme = "http" if self.plain_http(registry, extra_insecure) else "https"
        origin = Endpoint(f"{scheme}://{api}", registry, False)
        return [e for e in out if e.url != origin.url] + [origin]


def _fail(source: str, path: str, message: str) -> RegistryConfigError:
    return RegistryConfigError(f"{source}: {path}: {message}")


def _mapping(source: str, path: str, value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _fail(source, path, f"must be a mapping, not {type(value).__name__}")
    for key in value:
        if not isinstance(key, str) or not key:
            raise _fail(source, path, f"key {key!r} must be a non-empty string (quote host:port keys)")
    return value


def _known(source: str, path: str, value: dict[str, Any], known: tuple[str, ...]) -> None:
    for key in value:
        if key not in known:
            raise _fail(source, f"{path}.{key}" if path else key, f"unknown key; expected one of {', '.join(known)}")


def _string(source: str, path: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(source, path, f"must be a non-empty string, not {value!r}")
    return value


def _host_key(source: str, path: str, host: str) -> str:
    if "://" in host or "/" in host:
        raise _fail(source, path, f"{host!r} must be host[:port], without scheme or path")
    return host


def _endpoint(source: str, path: str, value: Any) -> str:
    url = _string(source, path, value).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise _fail(source, path, f"{url!r} needs a scheme: write 'https://{url.split('://')[-1]}'")
    if not parts.netloc:
        raise _fail(source, path, f"{url!r} has no host")
    if parts.path or parts.query or parts.fragment:
        raise _fail(source, path, f"{url!r}: paths are not supported; give scheme://host[:port]")
    return url


def _file(source: str, path: str, value: Any) -> str:
    name = _string(source, path, value)
    if not os.path.isfile(name):
        raise _fail(source, path, f"{name!r} does not exist or is not a file")
    return name


def _auth(source: str, path: str, value: Any) -> Credentials:
    auth = _mapping(source, path, value)
    _known(source, path, auth, ("username", "password", "auth"))
    if "auth" in auth:
        try:
            raw = base64.b64decode(_string(source, f"{path}.auth", auth["auth"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise _fail(source, f"{path}.auth", "is not base64 of USER:PASSWORD") from None
        user, sep, password = raw.partition(":")
        if not sep or not user:
            raise _fail(source, f"{path}.auth", "must decode to USER:PASSWORD")
        return Credentials(user, password)
    if "username" not in auth:
        raise _fail(source, f"{path}.username", "is required (with password), or give auth: base64(USER:PASSWORD)")
    password = auth.get("password", "")
    if not isinstance(password, str):
        raise _fail(source, f"{path}.password", "must be a string (quote it)")
    return Credentials(_string(source, f"{path}.username", auth["username"]), password)


def _tls(source: str, path: str, value: Any) -> TLSSettings:
    tls = _mapping(source, path, value)
    _known(source, path, tls, ("insecure_skip_verify", "ca_file", "cert_file", "key_file"))
    skip = tls.get("insecure_skip_verify", False)
    if not isinstance(skip, bool):
        raise _fail(source, f"{path}.insecure_skip_verify", f"must be true or false, not {skip!r}")
    files = {k: _file(source, f"{path}.{k}", tls[k]) for k in ("ca_file", "cert_file", "key_file") if k in tls}
    if ("cert_file" in files) != ("key_file" in files):
        raise _fail(source, path, "cert_file and key_file must be given together")
    return TLSSettings(skip, files.get("ca_file"), files.get("cert_file"), files.get("key_file"))


def parse(document: Any, source: str = "registries.yaml") -> RegistriesConfig:
    """Validate a decoded YAML document; raises RegistryConfigError naming the bad key."""
    top = _mapping(source, "(top level)", document)
    _known(source, "", top, _TOP_KEYS)
    mirrors: dict[str, tuple[str, ...]] = {}
    for name, spec in _mapping(source, "mirrors", top.get("mirrors")).items():
        path = f"mirrors.{name!r}" if ":" in name else f"mirrors.{name}"
        if name != "*":
            _host_key(source, path, name)
        body = _mapping(source, path, spec)
        _known(source, path, body, ("endpoints",))
        endpoints = body.get("endpoints")
        if not isinstance(endpoints, list) or not endpoints:
            raise _fail(source, f"{path}.endpoints", "must be a non-empty list of URLs like https://mirror:5000")
        mirrors[name] = tuple(_endpoint(source, f"{path}.endpoints[{i}]", e) for i, e in enumerate(endpoints))
    hosts: dict[str, HostConfig] = {}
    for name, spec in _mapping(source, "configs", top.get("configs")).items():
        path = f"configs.{name!r}" if ":" in name else f"configs.{name}"
        _host_key(source, path, name)
        body = _mapping(source, path, spec)
        _known(source, path, body, ("auth", "tls"))
        creds = _auth(source, f"{path}.auth", body["auth"]) if body.get("auth") is not None else None
        hosts[name] = HostConfig(creds, _tls(source, f"{path}.tls", body.get("tls")))
    insecure = top.get("insecure") or []
    if not isinstance(insecure, list):
        raise _fail(source, "insecure", "must be a list of host:port entries")
    for i, host in enumerate(insecure):
        _host_key(source, f"insecure[{i}]", _string(source, f"insecure[{i}]", host))
    return RegistriesConfig(mirrors, hosts, frozenset(insecure), source)


def config_path() -> Path:
    return Path(os.environ.get(ENV_PATH) or DEFAULT_PATH)


def load(path: str | os.PathLike[str] | None = None) -> RegistriesConfig:
    """Read the config (default: ``$SHOAL_REGISTRIES_CONFIG`` or /etc/shoal/registries.yaml).

    A missing file at the default location means "no mirrors, no settings"; a missing file that
    was named explicitly is an error.
    """
    explicit = path is not None or bool(os.environ.get(ENV_PATH))
    target = Path(path) if path is not None else config_path()
    try:
        text = target.read_text()
    except FileNotFoundError:
        if explicit:
            raise RegistryConfigError(f"{target}: no such registries config file") from None
        return RegistriesConfig()
    except OSError as exc:
        raise RegistryConfigError(f"{target}: cannot read: {exc.strerror or exc}") from None
    import yaml  # only with a file to read: ~1.4 MB the agent need not carry otherwise

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RegistryConfigError(f"{target}: not valid YAML: {exc}") from None
    return parse(document, str(target))
