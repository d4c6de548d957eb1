"""Node bearer tokens issued at join time, kept as a file-backed map of token hash → node name.

Only sha256 hashes of tokens are stored (JSON, mode 0600, replaced atomically), so the file does
not hand out credentials. Re-joining a node name rotates its token: the old one stops working.
``lookup`` is the API's token check for nodes (subject ``node:<name>``). It must not talk to the
network or know about HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import threading
from pathlib import Path

from shoal.pki.ca import write_private

__all__ = ["NodeCredentials"]

SUBJECT_PREFIX = "node:"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class NodeCredentials:
    """``NodeCredentials(path)``: ``issue(node) -> token``, ``lookup(token) -> "node:<name>" | None``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._by_hash: dict[str, str] = self._load()

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ValueError(f"{self.path}: node credentials are unreadable ({exc}); "
                             "restore the file or delete it and re-join every node") from None
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
            raise ValueError(f"{self.path}: expected a JSON object of token hash → node name")
        return dict(data)

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_private(self.path, json.dumps(self._by_hash, sort_keys=True).encode())

    def issue(self, node: str) -> str:
        """A new token for ``node``; any earlier token of that node is revoked."""
        token = secrets.token_urlsafe(32)
        with self._lock:
            self._by_hash = {h: n for h, n in self._by_hash.items() if n != node}
            self._by_hash[_hash(token)] = node
            self._save()
        return token

    def revoke(self, node: str) -> bool:
        """Forget every token of ``node``; True if it had one."""
        with self._lock:
            kept = {h: n for h, n in self._by_hash.items() if n != node}
            changed = len(kept) != len(self._by_hash)
            if changed:
                self._by_hash = kept
                self._save()
        return changed

    def lookup(self, token: str) -> str | None:
        node = self._by_hash.get(_hash(token))
        return None if node is None else SUBJECT_PREFIX + node

    def nodes(self) -> list[str]:
        return sorted(set(self._by_hash.values()))
