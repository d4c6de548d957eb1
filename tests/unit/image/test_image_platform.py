"""Platform selection from an index by this node's architecture and variant."""

from __future__ import annotations

import pytest

from shoal.image import mediatypes as mt
from shoal.image.errors import ImageNotFoundError
from shoal.image.oci import Descriptor, Index, Platform
from shoal.image.platform import Want, parse_platform, select_manifest


def _desc(n: int, arch: str, variant: str | None = None, os: str = "linux") -> Descriptor:
    return Descriptor(
        media_type=mt.OCI_MANIFEST,
        digest="sha256:" + str(n) * 64,
        size=1,
        platform=Platform(architecture=arch, os=os, variant=variant),
    )


INDEX = Index(
    schema_version=2,
    manifests=[
        _desc(1, "amd64"),
        _desc(2, "arm64", "v8"),
        _desc(3, "arm", "v6"),
        _desc(4, "arm", "v7"),
        _desc(5, "unknown", os="unknown"),
    ],
)


@pytest.mark.parametrize(
    ("want", "n"),
    [
        (Want("linux", "amd64"), 1),
        (Want("linux", "arm64", "v8"), 2),
        (Want("linux", "arm64"), 2),
        (Want("linux", "arm", "v7"), 4),
        (Want("linux", "arm", "v6"), 3),
    ],
)
def test_select(want: Want, n: int) -> None:
    assert select_manifest(INDEX, want, "img").digest == "sha256:" + str(n) * 64


def test_older_arm_variant_runs_on_newer_cpu_not_reverse() -> None:
    only_v6 = Index(schema_version=2, manifests=[_desc(3, "arm", "v6")])
    assert select_manifest(only_v6, Want("linux", "arm", "v7"), "img").digest.endswith("3" * 64)
    only_v7 = Index(schema_version=2, manifests=[_desc(4, "arm", "v7")])
    with pytest.raises(
        ImageNotFoundError, match="no manifest for platform linux/arm/v6; available: linux/arm/v7"
    ):
        select_manifest(only_v7, Want("linux", "arm", "v6"), "img")


def test_parse_platform() -> None:
    assert parse_platform("linux/arm/v7") == Want("linux", "arm", "v7")
    assert parse_platform("arm64") == Want("linux", "arm64")
    with pytest.raises(ValueError, match="expected OS/ARCH"):
        parse_platform("linux/")
