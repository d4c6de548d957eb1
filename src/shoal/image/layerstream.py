"""The uncompressed byte stream of one layer, read in 1 MiB chunks, for unpack.py.

Owns decompression (gzip, several members allowed, trailer CRC and length checked by zlib;
zstd; or plain, chosen by magic bytes), the layer's DiffID (sha256 of the uncompressed tar) and
the byte limit against decompression bombs (each decompress call is capped at one chunk of
output). It offers what ``tarfile`` needs in random-access mode (``read``/``tell``/forward
``seek``) plus :meth:`LayerStream.copy_to`, which writes a member's bytes to a file descriptor
straight from the decompressed chunks. Every per-chunk step (inflate, sha256, write) releases the
GIL, so several layers unpack in parallel threads. It must not interpret tar entries.
"""

from __future__ import annotations

import hashlib
import io
import os
import zlib
from typing import IO, Any, cast

from shoal.image.errors import LayerLimitError
from shoal.image.mediatypes import Compression, sniff_compression

CHUNK = 1 << 20
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class _Prefixed:
    """``head`` followed by the rest of ``raw`` (what the compression sniffing already read)."""

    def __init__(self, head: bytes, raw: IO[bytes]) -> None:
        self._head, self._raw = head, raw

    def read(self, n: int = -1) -> bytes:
        if self._head:
            out, self._head = self._head, b""
            return out
        return self._raw.read(n)


class LayerStream:
    """Forward-only reader of a layer's uncompressed tar; hashes and counts every byte produced."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self._raw, self._limit = raw, limit
        self.hash, self.count = hashlib.sha256(), 0
        self._buf, self._pos, self._offset = b"", 0, 0  # current chunk, read position in it, its start
        self._eof = False
        head = raw.read(CHUNK)
        self.compression = sniff_compression(head[:4])
        self._zin, self._plain_head = b"", b""
        self._z: Any = None
        self._zstd: Any = None
        if self.compression is Compression.GZIP:
            self._z, self._zin = zlib.decompressobj(_GZIP_WBITS), head
        elif self.compression is Compression.ZSTD:
            import zstandard

            self._zstd = zstandard.ZstdDecompressor().stream_reader(
                cast(IO[bytes], _Prefixed(head, raw)), read_across_frames=True, read_size=CHUNK
            )
        else:
            self._plain_head = head

    # -- producing chunks --------------------------------------------------------------------
    def _produce(self) -> bytes:
        if self._z is not None:
            return self._inflate()
        if self._zstd is not None:
            return bytes(self._zstd.read(CHUNK))
        if self._plain_head:
            out, self._plain_head = self._plain_head, b""
            return out
        return self._raw.read(CHUNK)

    def _inflate(self) -> bytes:
        while True:
            if self._z.eof:  # end of a gzip member: another may follow
                rest = self._z.unused_data or self._raw.read(CHUNK)
                if not rest:
                    return b""
                self._z, self._zin = zlib.decompressobj(_GZIP_WBITS), rest
            if not self._zin:
                self._zin = self._raw.read(CHUNK)
                if not self._zin:
                    raise EOFError("compressed layer ended before the end-of-stream marker")
            out: bytes = self._z.decompress(self._zin, CHUNK)
            self._zin = self._z.unconsumed_tail
            if out:
                return out

    def _next_chunk(self) -> bool:
        """Load the next chunk; False at the end of the stream."""
        if self._eof:
            return False
        self._offset += len(self._buf)
        data = self._produce()
        if not data:
            self._eof, self._buf, self._pos = True, b"", 0
            return False
        self.count += len(data)
        if self.count > self._limit:
            raise LayerLimitError(f"layer expands past the limit of {self._limit} bytes (decompression bomb?)")
        self.hash.update(data)
        self._buf, self._pos = data, 0
        return True

    # -- what tarfile uses -------------------------------------------------------------------
    def tell(self) -> int:
        return self._offset + self._pos

    def read(self, n: int = -1) -> bytes:
        """Exactly ``n`` bytes unless the stream ends first (tarfile relies on that)."""
        if n < 0:
            n = 1 << 62
        avail = len(self._buf) - self._pos
        if n <= avail:
            out = self._buf[self._pos : self._pos + n]
            self._pos += n
            return out
        parts = [self._buf[self._pos :]] if avail else []
        need = n - avail
        self._pos = len(self._buf)
        while need and self._next_chunk():
            take = min(need, len(self._buf))
            parts.append(self._buf[:take] if take < len(self._buf) else self._buf)
            self._pos, need = take, need - take
        return b"".join(parts)

    def seek(self, pos: int, whence: int = io.SEEK_SET) -> int:
        """Forward only (tarfile skips member data and padding this way)."""
        if whence == io.SEEK_CUR:
            pos += self.tell()
        elif whence != io.SEEK_SET:
            raise io.UnsupportedOperation("layer stream: only SEEK_SET/SEEK_CUR")
        if pos < self.tell():
            raise io.UnsupportedOperation(f"layer stream cannot seek back from {self.tell()} to {pos}")
        skip = pos - self.tell()
        while skip:
            avail = len(self._buf) - self._pos
            if not avail and not self._next_chunk():
                break
            step = min(skip, len(self._buf) - self._pos)
            self._pos, skip = self._pos + step, skip - step
        return self.tell()

    def copy_to(self, fd: int, size: int) -> int:
        """Write the next ``size`` bytes to ``fd`` from the chunks themselves; returns bytes written."""
        done = 0
        while done < size:
            if self._pos >= len(self._buf) and not self._next_chunk():
                break
            view = memoryview(self._buf)[self._pos : self._pos + (size - done)]
            while view:
                n = os.write(fd, view)
                view, done, self._pos = view[n:], done + n, self._pos + n
        return done

    def drain(self) -> None:
        """Read to the end so the DiffID covers trailing blocks."""
        self._pos = len(self._buf)
        while self._next_chunk():
            self._pos = len(self._buf)
