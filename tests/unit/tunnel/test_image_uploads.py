"""The server's spool of images pushed to nodes, without a server: the size limit (and its setting),
per-node access, and removal when the node took the archive or when nobody did in time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.api.errors import ApiError
from shoal.api.imagepush import DEFAULT_MAX_BYTES, ImageUploads, max_push_bytes


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_limit_setting() -> None:
    assert max_push_bytes({}) == DEFAULT_MAX_BYTES == 4 << 30
    assert max_push_bytes({"SHOAL_IMAGE_PUSH_MAX_BYTES": "1048576"}) == 1 << 20
    for bad in ("4GiB", "0", "-5"):
        with pytest.raises(ValueError, match="SHOAL_IMAGE_PUSH_MAX_BYTES"):
            max_push_bytes({"SHOAL_IMAGE_PUSH_MAX_BYTES": bad})


def test_spool_take_expire_and_refuse(tmp_path: Path) -> None:
    async def scenario() -> None:
        uploads = ImageUploads(max_bytes=10, ttl=0.2, spool=tmp_path)
        taken = await uploads.receive("edge-1", _chunks(b"abc", b"def"))
        assert taken.path.read_bytes() == b"abcdef"
        with pytest.raises(ApiError) as other:
            uploads.for_node("edge-2", taken.id)
        assert other.value.code == 403
        assert b"".join([chunk async for chunk in uploads.send(uploads.for_node("edge-1", taken.id).id)]) == b"abcdef"
        assert not taken.path.exists() and len(uploads) == 0

        forgotten = await uploads.receive("edge-1", _chunks(b"x"))
        assert forgotten.path.exists()
        await asyncio.sleep(0.4)
        assert not forgotten.path.exists() and len(uploads) == 0
        with pytest.raises(ApiError) as gone:
            uploads.for_node("edge-1", forgotten.id)
        assert gone.value.code == 404

        with pytest.raises(ApiError) as large:
            await uploads.receive("edge-1", _chunks(b"123456", b"78901"))
        assert large.value.code == 413 and "at most 10 bytes" in large.value.message
        assert list(tmp_path.iterdir()) == []

    asyncio.run(scenario())


def test_own_spool_dir_is_made_and_swept(tmp_path: Path) -> None:
    spool = tmp_path / "data" / "image-push"
    ImageUploads(max_bytes=10, spool=spool)
    assert spool.is_dir()
    (spool / "shoal-image-push-left.tar").write_bytes(b"from a crash")
    (spool / "keep.txt").write_bytes(b"not ours")
    ImageUploads(max_bytes=10, spool=spool)
    assert [p.name for p in spool.iterdir()] == ["keep.txt"]
