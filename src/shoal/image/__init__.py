"""Images: OCI content store, references, registry pull/push, safe layer unpacking, archives.

Runs on edge agents, so it imports no server-side layer (litestar, shoal.server, shoal.api,
shoal.store) and keeps heavy modules (httpx, zstandard) out of ``import shoal.image``: the
submodules are imported by name, e.g. ``from shoal.image.content import ContentStore``.
"""

from __future__ import annotations

__all__ = [
    "archive",
    "assemble",
    "buildcontext",
    "builder",
    "buildrun",
    "buildsteps",
    "content",
    "credentials",
    "dockerfile",
    "errors",
    "fetch",
    "layers",
    "layerstream",
    "layerwrite",
    "mediatypes",
    "mirror",
    "oci",
    "platform",
    "pull",
    "reference",
    "registry",
    "registryconfig",
    "unpack",
]
