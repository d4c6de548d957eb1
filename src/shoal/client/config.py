"""Client configuration: which server to talk to, which CA to trust, which token to send and which
client certificate to present.

Owns finding the config file (``--config``, then ``$SHOAL_CONFIG``, then ``~/.shoal/config.yaml``),
parsing it and building the TLS context. A ``ClientCertificate`` (a node's mTLS identity) is loaded
into every context built from the config and reloaded into them by ``reload()`` when its file is
replaced, so new connections present the renewed certificate while open ones finish. It must not
open connections.
"""

from __future__ import annotations

import os
import ssl
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.client.errors import ConfigError

ENV_VAR = "SHOAL_CONFIG"
_KEYS = ("server", "ca", "token")


def default_path(home: Path | None = None) -> Path:
    return (home if home is not None else Path.home()) / ".shoal" / "config.yaml"


def resolve_path(explicit: str | None = None, env: Mapping[str, str] | None = None,
                 home: Path | None = None) -> Path:
    """The config file to use: ``explicit``, then ``$SHOAL_CONFIG``, then ``~/.shoal/config.yaml``."""
    environ = os.environ if env is None else env
    if explicit:
        return Path(explicit)
    if environ.get(ENV_VAR):
        return Path(environ[ENV_VAR])
    fallback = default_path(home)
    if fallback.exists():
        return fallback
    raise ConfigError(
        "no shoal client config found; looked at --config (not given), "
        f"${ENV_VAR} (not set) and {fallback} (does not exist).\n"
        "  hint: point --config at the admin.yaml that `shoal server` wrote in its data dir, e.g.\n"
        "    shoal --config /var/lib/shoal/admin.yaml get pods\n"
        f"    export {ENV_VAR}=/var/lib/shoal/admin.yaml"
    )


_CONTEXTS: dict[tuple[str, ClientCertificate | None], ssl.SSLContext] = {}  # (CA, client cert) → shared context


class ClientCertificate:
    """A client certificate and its key (``cert_file`` may hold both) presented on new TLS connections."""

    def __init__(self, cert_file: Path, key_file: Path | None = None) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self._contexts: weakref.WeakSet[ssl.SSLContext] = weakref.WeakSet()
        self._lock = threading.Lock()

    def _load(self, context: ssl.SSLContext) -> None:
        try:
            context.load_cert_chain(self.cert_file, self.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"client certificate {self.cert_file}: cannot load it ({exc}); the node's "
                              "certificate and key do not match or are damaged: re-join the node") from None

    def apply(self, context: ssl.SSLContext) -> None:
        """Present this certificate on ``context``'s connections, now and after every ``reload``."""
        with self._lock:
            self._load(context)
            self._contexts.add(context)

    def reload(self) -> int:
        """Load the (replaced) files into every context this certificate was applied to; how many."""
        with self._lock:
            contexts = list(self._contexts)
            for context in contexts:
                self._load(context)
        return len(contexts)


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """Where the server is (``server`` URL), the CA PEM to verify it with, the bearer token and the
    client certificate (a node's; the admin config has none)."""

    server: str
    ca: str = ""
    token: str = ""
    source: str = ""
    client_cert: ClientCertificate | None = None

    @classmethod
    def from_mapping(cls, data: Any, source: str = "") -> ClientConfig:
        where = source or "client config"
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping with keys server, ca and token")
        unknown = sorted(str(k) for k in data if k not in _KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(_KEYS)}")
        for key in _KEYS:
            if key in data and data[key] is not None and not isinstance(data[key], str):
                raise ConfigError(f"{where}: {key} must be a string")
        server = (data.get("server") or "").strip().rstrip("/")
        if not server:
            raise ConfigError(f"{where}: server is required, e.g. server: https://127.0.0.1:6443")
        if not server.startswith(("https://", "http://")):
            raise ConfigError(f'{where}: server "{server}" must start with https:// (or http://)')
        return cls(server=server, ca=data.get("ca") or "", token=(data.get("token") or "").strip(),
                   source=source)

    @classmethod
    def load(cls, path: str | Path) -> ClientConfig:
        file = Path(path)
        try:
            text = file.read_text()
        except FileNotFoundError:
            raise ConfigError(f"client config {file} does not exist") from None
        except OSError as exc:
            raise ConfigError(f"cannot read client config {file}: {exc.strerror}") from None
        import yaml  # the CLI's config file; agents build their config from their identity (~1.4 MB less)

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: not valid YAML: {exc}") from None
        return cls.from_mapping(data, str(file))

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What httpx should verify the server with: the configured CA, or the system roots."""
        if not self.server.startswith("https://"):
            return False
        key = (self.ca, self.client_cert)
        cached = _CONTEXTS.get(key)
        if cached is not None:  # one context serves every client of this config (~0.3 MB each)
            return cached
        if not self.ca.strip():
            context = ssl.create_default_context()
        else:
            try:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and the host name
                context.load_verify_locations(cadata=self.ca)  # only this CA: not the system roots
            except (ssl.SSLError, ValueError) as exc:
                where = self.source or "client config"
                raise ConfigError(f"{where}: ca is not a PEM certificate ({exc}); copy it from the "
                                  "server's admin.yaml") from None
        if self.client_cert is not None:
            self.client_cert.apply(context)
        _CONTEXTS[key] = context
        return context


def load_config(explicit: str | None = None) -> ClientConfig:
    """Find and load the config as the CLI does."""
    return ClientConfig.load(resolve_path(explicit))
