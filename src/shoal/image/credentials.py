"""Stored registry logins: the auth file written by ``shoal registry login`` and its lookup.

The file is Docker's ``config.json`` shape (``{"auths": {"host": {"auth": base64(user:pass)}}}``),
so ``--authfile`` can point at a Docker or Podman file (``~/.docker/config.json``,
``${XDG_RUNTIME_DIR}/containers/auth.json``) and they can read ours. Default path:
``$SHOAL_AUTH_FILE`` or ``~/.config/shoal/auth.json``, written atomically with mode 0600 and with
keys we do not know (``credHelpers``, ``HttpHeaders``, ...) kept. Lookup accepts Docker's key
spellings (``https://host/v1/``, ``index.docker.io``) and Podman's per-repository keys
(``host/namespace``, most specific wins). It must not talk to registries (login verification is
in registry.py) nor print.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from shoal.image.auth import Credentials
from shoal.image.errors import ImageError

ENV_PATH = "SHOAL_AUTH_FILE"
_DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")


class AuthFileError(ImageError):
    """The auth file cannot be read or written, or is malformed."""


def default_path() -> Path:
    env = os.environ.get(ENV_PATH)
    if env:
        return Path(env)
    return Path(os.path.expanduser("~")) / ".config" / "shoal" / "auth.json"


def normalize_server(server: str) -> str:
    """``https://index.docker.io/v1/`` -> ``docker.io``; ``http://reg:5000`` -> ``reg:5000``.

    A path after the host is kept (Podman's repository-scoped keys like ``reg:5000/team``).
    """
    text = server.strip()
    if "://" in text:
        parts = urlsplit(text)
        text = parts.netloc + parts.path
    text = text.rstrip("/")
    host, _, path = text.partition("/")
    if host.lower() in _DOCKER_HUB:
        host = "docker.io"
        if path in ("v1", "v2"):
            path = ""
    return f"{host}/{path}" if path else host


@dataclass(frozen=True, slots=True)
class Login:
    server: str
    username: str


def _decode_entry(path: Path, key: str, entry: Any) -> Credentials | None:
    if not isinstance(entry, dict):
        raise AuthFileError(f"{path}: auths.{key!r} must be an object like {{\"auth\": \"<base64>\"}}")
    auth = entry.get("auth")
    if isinstance(auth, str) and auth:
        try:
            raw = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise AuthFileError(
                f"{path}: auths.{key!r}.auth is not base64 of USER:PASSWORD; log in again with "
                f"`shoal registry login {key}`"
            ) from None
        user, sep, password = raw.partition(":")
        if sep and user:
            return Credentials(user, password)
        raise AuthFileError(f"{path}: auths.{key!r}.auth must decode to USER:PASSWORD")
    username, secret = entry.get("username"), entry.get("password")
    if isinstance(username, str) and username and isinstance(secret, str):
        return Credentials(username, secret)
    return None  # e.g. {} written by a credential helper: nothing stored here


class AuthFile:
    """``AuthFile(path)``: ``get(registry, repository)``, ``set``, ``remove``, ``logins``."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else default_path()

    def _document(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise AuthFileError(f"{self.path}: cannot read the auth file: {exc.strerror or exc}") from None
        if not text.strip():
            return {}
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AuthFileError(f"{self.path}: not valid JSON ({exc}); fix or remove the file") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("auths", {}), dict):
            raise AuthFileError(f"{self.path}: expected {{\"auths\": {{\"host\": {{\"auth\": ...}}}}}}")
        return doc

    def _entries(self) -> dict[str, tuple[str, Any]]:
        """Normalized server -> (key as written, entry)."""
        auths = self._document().get("auths", {})
        return {normalize_server(k): (k, v) for k, v in auths.items()}

    def get(self, registry: str, repository: str = "") -> Credentials | None:
        """The login for ``registry`` (most specific ``registry/repo/prefix`` key first), or None."""
        entries = self._entries()
        host = normalize_server(registry)
        parts = [p for p in repository.split("/") if p]
        for n in range(len(parts), -1, -1):
            key = "/".join([host, *parts[:n]])
            if key in entries:
                written, entry = entries[key]
                creds = _decode_entry(self.path, written, entry)
                if creds is not None:
                    return creds
        return None

    def logins(self) -> list[Login]:
        out = []
        for server, (written, entry) in sorted(self._entries().items()):
            creds = _decode_entry(self.path, written, entry)
            if creds is not None:
                out.append(Login(server, creds.username))
        return out

    def set(self, server: str, credentials: Credentials) -> None:
        doc = self._document()
        auths = self._without(doc.get("auths", {}), server)
        raw = f"{credentials.username}:{credentials.password}".encode()
        auths[normalize_server(server)] = {"auth": base64.b64encode(raw).decode()}
        self._write(doc | {"auths": auths})

    def remove(self, server: str) -> bool:
        """Forget the login for ``server``; False if there was none."""
        doc = self._document()
        auths = doc.get("auths", {})
        kept = self._without(auths, server)
        if len(kept) == len(auths):
            return False
        self._write(doc | {"auths": kept})
        return True

    @staticmethod
    def _without(auths: dict[str, Any], server: str) -> dict[str, Any]:
        target = normalize_server(server)
        return {k: v for k, v in auths.items() if normalize_server(k) != target}

    def _write(self, doc: dict[str, Any]) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                os.fchmod(f.fileno(), 0o600)
                json.dump(doc, f, indent=2)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except OSError as exc:
            raise AuthFileError(
                f"{self.path}: cannot write the auth file: {exc.strerror or exc} (use --authfile or $SHOAL_AUTH_FILE)"
            ) from None
