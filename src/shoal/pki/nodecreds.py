"""Node credentials issued at join time: bearer tokens (by hash) and each node's current join id.

Only sha256 hashes of tokens are stored (JSON ``{"tokens": {hash: node}, "joins": {node: id}}``,
mode 0600, replaced atomically), so the file does not hand out credentials. Re-joining a node name
rotates its token and its join id: the old token and every certificate of the old join (their
``OU=join-<id>``) stop working; renewing a certificate keeps the join id. ``lookup`` is the API's
token check and ``peer_subject`` its client-certificate check (both give ``node:<name>``). It must
not talk to the network, parse certificates or know about HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shoal.pki.files import write_private

__all__ = ["NodeCredentials", "new_join_id"]

SUBJECT_PREFIX = "node:"
NODE_ORGANIZATION = "shoal:nodes"  # the same names as pki.ca writes into node certificates
JOIN_PREFIX = "join-"


def new_join_id() -> str:
    return secrets.token_hex(8)


def _names(fields: Mapping[str, Any]) -> dict[str, str]:
    """``ssl.SSLSocket.getpeercert()``'s subject (a tuple of RDN tuples) as a flat name → value map."""
    names: dict[str, str] = {}
    for rdn in fields.get("subject") or ():
        for pair in rdn:
            if isinstance(pair, tuple) and len(pair) == 2:
                names[str(pair[0])] = str(pair[1])
    return names


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _string_map(value: object) -> bool:
    return isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())


class NodeCredentials:
    """``NodeCredentials(path)``: ``issue(node) -> token``, ``lookup(token) -> "node:<name>" | None``,
    ``join_id(node)`` and ``peer_subject(getpeercert dict) -> "node:<name>" | None``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._by_hash, self._joins = self._load()

    def _load(self) -> tuple[dict[str, str], dict[str, str]]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}, {}
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: node credentials are unreadable ({exc}); "
                             "restore the file or delete it and re-join every node") from None
        if isinstance(data, dict) and set(data) <= {"tokens", "joins"} and data \
                and all(_string_map(v) for v in data.values()):
            return dict(data.get("tokens", {})), dict(data.get("joins", {}))
        if _string_map(data):  # the layout before join ids: a plain token hash → node name map
            return dict(data), {}
        raise ValueError(f'{self.path}: expected a JSON object {{"tokens": {{hash: node}}, "joins": {{node: id}}}}')

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = {"tokens": self._by_hash, "joins": self._joins}
        write_private(self.path, json.dumps(body, sort_keys=True).encode())

    def issue(self, node: str, join_id: str | None = None) -> str:
        """A new token and join id for ``node``; any earlier token and certificate of that node is revoked."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._by_hash = {h: n for h, n in self._by_hash.items() if n != node}
            self._by_hash[_hash(token)] = node
            self._joins[node] = join_id or new_join_id()
            self._save()
        return token

    def revoke(self, node: str) -> bool:
        """Forget every token and certificate of ``node``; True if it had any."""
        with self._lock:
            kept = {h: n for h, n in self._by_hash.items() if n != node}
            changed = len(kept) != len(self._by_hash) or node in self._joins
            if changed:
                self._by_hash = kept
                self._joins.pop(node, None)
                self._save()
        return changed

    def lookup(self, token: str) -> str | None:
        node = self._by_hash.get(_hash(token))
        return None if node is None else SUBJECT_PREFIX + node

    def join_id(self, node: str) -> str | None:
        """The id of ``node``'s current join (what its certificates carry as ``OU=join-<id>``)."""
        return self._joins.get(node)

    def peer_subject(self, fields: Mapping[str, Any]) -> str | None:
        """The subject of a verified client certificate (``getpeercert()`` form) of the node's current join."""
        names = _names(fields)
        common, unit = names.get("commonName", ""), names.get("organizationalUnitName", "")
        if names.get("organizationName") != NODE_ORGANIZATION or not common.startswith(SUBJECT_PREFIX):
            return None
        node = common[len(SUBJECT_PREFIX):]
        current = self._joins.get(node)
        if current is None or not unit.startswith(JOIN_PREFIX) or unit[len(JOIN_PREFIX):] != current:
            return None
        return SUBJECT_PREFIX + node

    def nodes(self) -> list[str]:
        return sorted(set(self._by_hash.values()))
