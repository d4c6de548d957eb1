"""The keyring that encrypts Secrets at rest: AES-256 keys with ids, one of them primary.

Pure: parses and prints the key file's text (JSON) and makes new rings; reading and writing the
file (mode 0600) is the server's business. The primary key seals every new write; the others only
open rows written before a rotation. Errors name the file and the field, never a key's bytes.

File format::

    {"primary": "3f9a1c2e",
     "keys": [{"id": "3f9a1c2e", "created": "2026-11-23T14:56:18Z", "key": "<base64 of 32 bytes>"}]}
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from shoal.store.protocol import Unavailable

__all__ = ["KEY_BYTES", "Keyring", "KeyringError", "SecretKey"]

KEY_BYTES = 32  # AES-256
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")


class KeyringError(Unavailable):
    """The key file cannot be used as it is; the message names the file, the field and the fix."""


@dataclass(frozen=True, slots=True)
class SecretKey:
    id: str
    key: bytes
    created: str = ""

    def __repr__(self) -> str:  # never show the key material
        return f"SecretKey(id={self.id!r}, created={self.created!r})"


@dataclass(frozen=True, slots=True)
class Keyring:
    keys: tuple[SecretKey, ...]
    primary: str
    source: str = "<memory>"  # where it came from, for error messages

    def __post_init__(self) -> None:
        if self.primary not in {k.id for k in self.keys}:
            raise KeyringError(f"{self.source}: primary key {self.primary!r} is not among its keys")

    @classmethod
    def generate(cls, now: dt.datetime, source: str = "<memory>") -> Keyring:
        key = _new_key(now, ())
        return cls((key,), key.id, source)

    def get(self, key_id: str) -> SecretKey | None:
        return next((k for k in self.keys if k.id == key_id), None)

    @property
    def primary_key(self) -> SecretKey:
        found = self.get(self.primary)
        assert found is not None
        return found

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(k.id for k in self.keys)

    def rotated(self, now: dt.datetime) -> Keyring:
        """The same keys plus a new one, which becomes primary."""
        key = _new_key(now, self.ids)
        return Keyring((*self.keys, key), key.id, self.source)

    def only(self, keep: set[str] | frozenset[str]) -> Keyring:
        """This ring without the keys not in ``keep`` (the primary always stays)."""
        return Keyring(tuple(k for k in self.keys if k.id in keep or k.id == self.primary), self.primary,
                       self.source)

    def dump(self) -> bytes:
        doc = {"primary": self.primary,
               "keys": [{"id": k.id, "created": k.created, "key": base64.b64encode(k.key).decode()}
                        for k in self.keys]}
        return (json.dumps(doc, indent=2) + "\n").encode()

    @classmethod
    def parse(cls, text: bytes, source: str) -> Keyring:
        """Read a key file's contents; ``KeyringError`` names ``source`` and the bad field."""
        try:
            doc: Any = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise KeyringError(f"{source} is not a shoal secrets key file (not JSON: {exc.__class__.__name__}); "
                               "restore it from your backup") from None
        if not isinstance(doc, dict):
            raise KeyringError(f'{source}: expected an object with "primary" and "keys"')
        unknown = sorted(set(doc) - {"primary", "keys"})
        if unknown:
            raise KeyringError(f'{source}: unknown field "{unknown[0]}"; the file has only "primary" and "keys"')
        primary, entries = doc.get("primary"), doc.get("keys")
        if not isinstance(entries, list) or not entries:
            raise KeyringError(f'{source}: "keys" must be a non-empty list of {{"id", "created", "key"}}')
        keys = [_parse_key(entry, f"{source}: keys[{i}]") for i, entry in enumerate(entries)]
        seen: set[str] = set()
        for i, key in enumerate(keys):
            if key.id in seen:
                raise KeyringError(f'{source}: keys[{i}].id "{key.id}" appears twice; key ids must be unique')
            seen.add(key.id)
        if not isinstance(primary, str) or primary not in seen:
            raise KeyringError(f'{source}: "primary" must be the id of one of its keys ({", ".join(sorted(seen))}), '
                               f"got {primary!r}")
        return cls(tuple(keys), primary, source)


def _parse_key(entry: Any, where: str) -> SecretKey:
    if not isinstance(entry, dict):
        raise KeyringError(f'{where} must be an object with "id", "created" and "key"')
    key_id, created, material = entry.get("id"), entry.get("created", ""), entry.get("key")
    unknown = sorted(set(entry) - {"id", "created", "key"})
    if unknown:
        raise KeyringError(f'{where}: unknown field "{unknown[0]}"')
    if not isinstance(key_id, str) or not _ID.match(key_id):
        raise KeyringError(f"{where}.id must be 1-63 letters, digits, '.', '_' or '-', got {key_id!r}")
    if not isinstance(created, str):
        raise KeyringError(f"{where}.created must be a timestamp string")
    if not isinstance(material, str):
        raise KeyringError(f"{where}.key must be the base64 of {KEY_BYTES} random bytes")
    try:
        raw = base64.b64decode(material, validate=True)
    except (binascii.Error, ValueError):
        raise KeyringError(f"{where}.key is not base64; it must be the base64 of {KEY_BYTES} random bytes") from None
    if len(raw) != KEY_BYTES:
        raise KeyringError(f"{where}.key holds {len(raw)} bytes; an AES-256 key is {KEY_BYTES} bytes")
    return SecretKey(key_id, raw, created)


def _new_key(now: dt.datetime, taken: tuple[str, ...]) -> SecretKey:
    for _ in range(100):
        key_id = secrets.token_hex(4)
        if key_id not in taken:
            break
    stamp = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return SecretKey(key_id, secrets.token_bytes(KEY_BYTES), stamp)
