"""The agent's end of an image push: fetch the archive the server holds for this node and load it.

The server sends an ``image-load`` frame down the tunnel naming an upload; ``load_pushed_image``
fetches it with the node's own ``GET /api/v1/nodes/NODE/images/ID`` into a temp file beside the
image store, loads it into that store (``shoal.image.archive.load``: every blob hashed on the way in)
and removes the file. Its output is the answer to the tunnel request, NDJSON lines: progress
(``{"fetched": N}``) and finally ``{"loaded": [names]}`` or ``{"error": message}``. Pods then find the
image locally (``imagePullPolicy: IfNotPresent`` or ``Never``), with no registry at all. It must not
pull from registries nor start containers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import msgspec

if TYPE_CHECKING:
    from shoal.image.content import ContentStore

__all__ = ["load_pushed_image"]

_PROGRESS_SECONDS = 2.0


def _line(doc: dict[str, object]) -> bytes:
    return msgspec.json.encode(doc) + b"\n"


async def load_pushed_image(http: httpx.AsyncClient, path: str, store: ContentStore,
                            image: str) -> AsyncGenerator[bytes, None]:
    """Fetch the archive at ``path`` into ``store``; NDJSON progress, then the result line."""
    from shoal.image.archive import load
    from shoal.image.errors import ImageError
    from shoal.image.reference import parse_reference

    store.root.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".pushed-", suffix=".tar", dir=store.root)
    archive = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            fetched, reported = 0, time.monotonic()
            async with http.stream("GET", path, timeout=httpx.Timeout(30.0, read=60.0)) as response:
                if response.status_code != 200:
                    await response.aread()
                    yield _line({"error": f"fetching the image archive from the server failed: HTTP "
                                          f"{response.status_code}: {response.text[:300]}"})
                    return
                async for chunk in response.aiter_bytes(1 << 20):
                    await asyncio.to_thread(out.write, chunk)
                    fetched += len(chunk)
                    if time.monotonic() - reported >= _PROGRESS_SECONDS:
                        reported = time.monotonic()
                        yield _line({"fetched": fetched})
        yield _line({"fetched": fetched})
        try:
            names = await asyncio.to_thread(load, store, archive)
            if image and str(parse_reference(image)) not in names:
                yield _line({"error": f'the archive does not hold image "{image}"; it holds '
                                      f'{", ".join(names) or "no named image"}'})
                return
        except (ImageError, ValueError) as exc:
            yield _line({"error": f"loading the image archive failed: {exc}"})
            return
        yield _line({"loaded": names})
    except (httpx.HTTPError, OSError) as exc:
        yield _line({"error": f"fetching the image archive from the server failed: {str(exc) or type(exc).__name__}"})
    finally:
        with contextlib.suppress(OSError):
            archive.unlink()
