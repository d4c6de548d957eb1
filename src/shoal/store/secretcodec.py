"""How objects become database rows and back, sealing Secrets with AES-256-GCM on the way.

A Secret's whole JSON (data, annotations and managedFields alike: an applied configuration holds
the data too) is encrypted under the keyring's primary key; its row reads
``{"kind":"Secret","encrypted":{"keyId":..,"nonce":..,"ciphertext":..}}``. The row's kind,
namespace and name are the associated data, so a ciphertext moved to another row does not open.
Every other kind, and Secrets when no keyring is given, are plain JSON. Used only by the writer
thread; it must not touch the database or log anything of an object.
"""

from __future__ import annotations

import base64
import os
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shoal.model import Object
from shoal.store.keyring import Keyring
from shoal.store.protocol import Unavailable

__all__ = ["SEALED_KIND", "RowCodec", "SecretKeyMissing", "SecretUnreadable", "kind_decoders"]

SEALED_KIND = "Secret"
_NONCE_BYTES = 12
Key = tuple[str, str, str]


class SecretKeyMissing(Unavailable):
    """Rows are sealed with keys the store was not given; ``key_ids`` names them."""

    def __init__(self, message: str, key_ids: tuple[str, ...]) -> None:
        super().__init__(message)
        self.key_ids = key_ids


class SecretUnreadable(Unavailable):
    """A sealed row does not open with the key its id names: wrong key file or a damaged row."""


class _Sealed(msgspec.Struct, frozen=True, rename="camel"):
    key_id: str
    nonce: str
    ciphertext: str


class _Envelope(msgspec.Struct, frozen=True):
    kind: str = ""
    encrypted: _Sealed | None = None


_encode = msgspec.json.Encoder().encode
_envelope = msgspec.json.Decoder(_Envelope)


def kind_decoders() -> dict[str, msgspec.json.Decoder[Any]]:
    """A JSON decoder for each model kind, by kind name."""
    from shoal.model import KINDS

    return {info.kind: msgspec.json.Decoder(info.cls) for info in KINDS}


def _aad(key: Key) -> bytes:
    return "\0".join(key).encode()


def _describe(key: Key) -> str:
    kind, ns, name = key
    return f'{kind} "{name}" in namespace "{ns}"' if ns else f'{kind} "{name}"'


class RowCodec:
    """Encodes objects to row bytes and back. ``keyring=None`` writes Secrets in plain JSON (and
    refuses to read sealed ones); ``plain_seen`` counts plain Secret rows read, so the writer can
    seal them."""

    def __init__(self, keyring: Keyring | None, decoders: dict[str, msgspec.json.Decoder[Any]]) -> None:
        self.keyring = keyring
        self._decoders = decoders
        self._ciphers = {k.id: AESGCM(k.key) for k in keyring.keys} if keyring else {}
        self.plain_seen = 0

    def encode(self, key: Key, obj: Object) -> bytes:
        data = _encode(obj)
        if self.keyring is None or key[0] != SEALED_KIND:
            return data
        return self.seal(key, data)

    def seal(self, key: Key, plain: bytes) -> bytes:
        assert self.keyring is not None
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._ciphers[self.keyring.primary].encrypt(nonce, plain, _aad(key))
        return _encode(_Envelope(SEALED_KIND, _Sealed(self.keyring.primary, base64.b64encode(nonce).decode(),
                                                      base64.b64encode(sealed).decode())))

    def key_id(self, key: Key, data: bytes) -> str | None:
        """The id of the key a row is sealed with; None for a plain row."""
        if key[0] != SEALED_KIND:
            return None
        sealed = _envelope.decode(data).encrypted
        return None if sealed is None else sealed.key_id

    def decode(self, key: Key, data: bytes, where: str) -> Object:
        """The object in a row; ``where`` names the row in errors (a path and a row description)."""
        kind = key[0]
        decoder = self._decoders.get(kind)
        if decoder is None:
            raise Unavailable(f"{where} has kind {kind!r}, unknown to this shoal")
        plain = self.open(key, data, where) if kind == SEALED_KIND else data
        try:
            obj: Object = decoder.decode(plain)
        except msgspec.DecodeError as exc:
            raise Unavailable(f"{where} cannot be decoded ({exc}); "
                              "the database was written by an incompatible shoal") from None
        return obj

    def open(self, key: Key, data: bytes, where: str) -> bytes:
        try:
            sealed = _envelope.decode(data).encrypted
        except msgspec.DecodeError as exc:
            raise Unavailable(f"{where} cannot be decoded ({exc}); "
                              "the database was written by an incompatible shoal") from None
        if sealed is None:
            self.plain_seen += 1
            return data
        cipher = self._ciphers.get(sealed.key_id)
        if cipher is None:
            source = self.keyring.source if self.keyring else "no key file"
            raise SecretKeyMissing(f'{where} is encrypted with key "{sealed.key_id}", which is not in {source}; '
                                   "restore the secrets key file that holds it", (sealed.key_id,))
        try:
            return cipher.decrypt(base64.b64decode(sealed.nonce), base64.b64decode(sealed.ciphertext), _aad(key))
        except (InvalidTag, ValueError):
            raise SecretUnreadable(f'{where} does not decrypt with key "{sealed.key_id}" from '
                                   f"{self.keyring.source if self.keyring else 'no key file'}: the key file does "
                                   f"not belong to this database, or the row of {_describe(key)} is damaged"
                                   ) from None
