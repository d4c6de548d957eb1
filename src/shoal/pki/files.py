"""Writing secret files safely: ``write_private`` replaces a file atomically with mode 0600.

It imports nothing heavy (no ``cryptography``), so the agent can rotate its key and certificate
without loading the crypto library into its long-running process. It must not parse certificates.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_private"]


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data``, mode 0600: a reader never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
