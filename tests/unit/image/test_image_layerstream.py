"""The chunked layer reader under apply_layer: chunk boundaries, gzip members and trailers, zstd."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest
import zstandard
from imagetar import file, layer

from shoal.image.errors import LayerLimitError, UnsafeLayerError
from shoal.image.layerstream import CHUNK, LayerStream
from shoal.image.unpack import UnpackLimits, apply_layer

BIG = os.urandom(2 * CHUNK + 12345)  # spans several chunks and ends off a 512-byte block


def _tar(*entries: tuple[str, bytes]) -> bytes:
    return layer(*(file(name, data) for name, data in entries))


@pytest.mark.parametrize("compress", [lambda b: b, gzip.compress, zstandard.ZstdCompressor().compress])
def test_big_and_small_files_across_chunks_and_diff_id(tmp_path: Path, compress: object) -> None:
    raw = _tar(("a/small", b"x" * 10), ("a/big", BIG), ("a/after", b"tail"), ("empty", b""))
    stats = apply_layer(io.BytesIO(compress(raw)), tmp_path)  # type: ignore[operator]
    assert (tmp_path / "a" / "big").read_bytes() == BIG
    assert (tmp_path / "a" / "small").read_bytes() == b"x" * 10
    assert (tmp_path / "a" / "after").read_bytes() == b"tail"
    assert (tmp_path / "empty").read_bytes() == b""
    assert stats.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert stats.bytes == len(BIG) + 14


def test_concatenated_gzip_members_are_one_layer(tmp_path: Path) -> None:
    raw = _tar(("big", BIG), ("f", b"data"))
    cut = len(raw) // 3
    stats = apply_layer(io.BytesIO(gzip.compress(raw[:cut]) + gzip.compress(raw[cut:])), tmp_path)
    assert (tmp_path / "big").read_bytes() == BIG
    assert (tmp_path / "f").read_bytes() == b"data"
    assert stats.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_gzip_crc_mismatch_is_refused(tmp_path: Path) -> None:
    data = bytearray(gzip.compress(_tar(("f", b"hello" * 100))))
    data[-8] ^= 0xFF  # the CRC32 in the gzip trailer
    with pytest.raises(UnsafeLayerError, match="not a valid"):
        apply_layer(io.BytesIO(bytes(data)), tmp_path)


def test_truncated_gzip_is_refused(tmp_path: Path) -> None:
    data = gzip.compress(_tar(("big", BIG)), compresslevel=1)
    with pytest.raises(UnsafeLayerError, match="not a valid"):
        apply_layer(io.BytesIO(data[: len(data) // 2]), tmp_path)


def test_garbage_after_gzip_member_is_refused(tmp_path: Path) -> None:
    data = gzip.compress(_tar(("f", b"ok"))) + b"this is not gzip"
    with pytest.raises(UnsafeLayerError, match="not a valid"):
        apply_layer(io.BytesIO(data), tmp_path)


def test_truncated_tar_member_data_is_refused(tmp_path: Path) -> None:
    raw = _tar(("big", BIG))
    with pytest.raises(UnsafeLayerError, match="not a valid"):
        apply_layer(io.BytesIO(raw[: 512 + CHUNK]), tmp_path)


def test_zstd_bomb_is_stopped_by_byte_limit(tmp_path: Path) -> None:
    bomb = zstandard.ZstdCompressor().compress(_tar(("zeros", bytes(16 << 20))))
    assert len(bomb) < 64 << 10
    with pytest.raises(LayerLimitError, match="limit of 4194304 bytes"):
        apply_layer(io.BytesIO(bomb), tmp_path, limits=UnpackLimits(max_bytes=4 << 20))
    assert sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()) <= 4 << 20


def test_reads_are_exact_seeks_forward_only_and_everything_is_hashed() -> None:
    data = os.urandom(3 * CHUNK + 7)
    s = LayerStream(io.BytesIO(gzip.compress(data, compresslevel=1)), 1 << 30)
    assert s.read(10) == data[:10]
    assert s.read(CHUNK + 5) == data[10 : CHUNK + 15]
    assert s.seek(2 * CHUNK) == 2 * CHUNK == s.tell()
    with pytest.raises(io.UnsupportedOperation, match="cannot seek back"):
        s.seek(5)
    assert s.read(3) == data[2 * CHUNK : 2 * CHUNK + 3]
    s.drain()
    assert s.read(1) == b""
    assert s.hash.hexdigest() == hashlib.sha256(data).hexdigest()
    assert s.count == len(data)


def test_tarfile_sees_the_same_members_as_a_plain_read(tmp_path: Path) -> None:
    raw = _tar(("one", b"1"), ("two", BIG), ("three", b"3" * 600))
    with tarfile.open(fileobj=LayerStream(io.BytesIO(raw), 1 << 30), mode="r:") as tar:  # type: ignore[call-overload]
        names = [(m.name, m.size) for m in tar]
    assert names == [("one", 1), ("two", len(BIG)), ("three", 600)]
