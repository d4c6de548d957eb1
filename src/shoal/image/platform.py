"""Platform selection: which manifest of an index/manifest list this node should run.

Owns the mapping from the kernel's machine name to OCI ``architecture``/``variant`` and the
choice among an index's manifests. Pure apart from reading ``platform.machine()`` by default.
"""

from __future__ import annotations

import platform as _platform
from dataclasses import dataclass

from shoal.image.errors import ImageNotFoundError
from shoal.image.oci import Descriptor, Index

_MACHINES = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv8l": ("arm", "v7"),
    "i686": ("386", None),
    "riscv64": ("riscv64", None),
}


@dataclass(frozen=True, slots=True)
class Want:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def host_platform() -> Want:
    arch, variant = _MACHINES.get(_platform.machine(), (_platform.machine(), None))
    return Want("linux", arch, variant)


def parse_platform(text: str) -> Want:
    """``linux/arm64``, ``linux/arm/v7`` or just ``arm64``."""
    parts = text.split("/")
    if len(parts) == 1:
        parts = ["linux", *parts]
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"platform {text!r}: expected OS/ARCH[/VARIANT], e.g. linux/arm64 or linux/arm/v7")
    return Want(parts[0], parts[1], parts[2] if len(parts) == 3 else None)


def _variant_rank(want: Want, variant: str | None) -> int | None:
    """Lower is better; None means incompatible."""
    if want.variant is None or variant is None or variant == want.variant:
        return 0 if variant == want.variant else 1
    if want.architecture == "arm" and variant.startswith("v") and want.variant.startswith("v"):
        have, need = int(variant[1:] or 0), int(want.variant[1:] or 0)
        return None if have > need else 1 + need - have  # a v6 image runs on a v7 CPU, not the reverse
    return None


def select_manifest(index: Index, want: Want, what: str) -> Descriptor:
    best: tuple[int, Descriptor] | None = None
    available = []
    for desc in index.manifests:
        p = desc.platform
        if p is None:
            continue
        available.append("/".join(x for x in (p.os, p.architecture, p.variant) if x))
        if p.os != want.os or p.architecture != want.architecture:
            continue
        rank = _variant_rank(want, p.variant)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, desc)
    if best is None:
        raise ImageNotFoundError(
            f"{what}: no manifest for platform {want}; available: "
            f"{', '.join(available) or 'none'} (choose one with --platform)"
        )
    return best[1]
