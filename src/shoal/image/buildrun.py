"""Where the builder touches the host: RUN steps in runc containers, and read-only stage views.

Owns running one RUN step through the runtime's OCI driver (runc under conmon) over an overlay
of the stage's unpacked layers, with no network unless asked (``--network host`` joins this
process's network namespace and binds ``/etc/resolv.conf``), streaming the step's output, and
handing the container's overlay upper dir to a callback before everything is torn down. Also
mounts a read-only merged view of a stage's layers for COPY. It must not decide what a step
means (builder.py) nor write layer blobs (layerwrite.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from shoal.image.errors import ImageError
from shoal.runtime.oci import OciDriver
from shoal.runtime.oci.rootfs import OverlayPaths, mount_overlay, unmount
from shoal.runtime.protocol import ContainerSpec, DriverError, Mount, NamespaceJoin, User

T = TypeVar("T")
# Paths runc creates as mount points; left out of the layer unless the image already had them.
MOUNT_POINTS = ("proc", "sys", "dev", "etc/resolv.conf")


class StepFailedError(ImageError):
    """A RUN step that exited non-zero, timed out, or could not start."""


@dataclass(frozen=True, slots=True)
class RunRequest:
    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    working_dir: str
    user: User
    network_host: bool
    timeout: float


def _exists_in(lower_dirs: Sequence[str], rel: str) -> bool:
    return any(os.path.lexists(os.path.join(d, rel)) for d in lower_dirs)


class StepRunner:
    """Runs RUN steps; containers, bundles and overlays live under ``work_dir`` and never outlive a step."""

    def __init__(self, work_dir: Path, runc_root: Path = Path("/run/shoal/build-runc")) -> None:
        self.work_dir = work_dir
        self._driver = OciDriver(
            root_dir=work_dir / "containers", runc_root=runc_root, cgroup_parent="/shoal-build"
        )

    def _empty_dir(self) -> str:
        empty = self.work_dir / "empty"
        empty.mkdir(parents=True, exist_ok=True)
        return str(empty)

    @contextlib.contextmanager
    def view(self, lower_dirs: Sequence[str]) -> Iterator[Path]:
        """A read-only merged root of ``lower_dirs`` (topmost first) for as long as the block runs."""
        if len(lower_dirs) <= 1:
            yield Path(lower_dirs[0] if lower_dirs else self._empty_dir())
            return
        base = self.work_dir / f"view-{uuid.uuid4().hex[:12]}"
        paths = OverlayPaths(merged=base / "merged", upper=base / "upper", work=base / "work")
        try:
            mount_overlay(tuple(lower_dirs), paths)
            yield paths.merged
        except DriverError as exc:
            raise ImageError(f"cannot mount the build stage's layers: {exc}") from None
        finally:
            unmount(paths.merged)
            shutil.rmtree(base, ignore_errors=True)

    async def run(
        self,
        lower_dirs: Sequence[str],
        request: RunRequest,
        output: Callable[[str], None],
        collect: Callable[[Path, list[str]], T],
    ) -> T:
        """Run the step; on exit 0 call ``collect(upper_dir, skip_paths)`` and return its result."""
        lowers = tuple(lower_dirs) or (self._empty_dir(),)
        cid = f"build-{uuid.uuid4().hex[:16]}"
        skip = [m for m in MOUNT_POINTS if not _exists_in(lowers, m)]
        mounts: tuple[Mount, ...] = ()
        joins: tuple[NamespaceJoin, ...] = ()
        if request.network_host:
            joins = (NamespaceJoin("network", f"/proc/{os.getpid()}/ns/net"),)
            if os.path.exists("/etc/resolv.conf"):
                mounts = (Mount("/etc/resolv.conf", "/etc/resolv.conf", read_only=True),)
        spec = ContainerSpec(
            id=cid,
            name="build",
            pod_uid="build",
            pod_name="build",
            lower_dirs=lowers,
            command=request.argv,
            env=request.env,
            working_dir=request.working_dir,
            user=request.user,
            mounts=mounts,
            join_namespaces=joins,
            hostname="buildkit",
            log_path=str(self.work_dir / "containers" / f"{cid}.log"),
        )
        created = False
        try:
            await self._driver.create(spec)
            created = True
            await self._driver.start(cid)
            try:
                async with asyncio.timeout(request.timeout):
                    async for line in self._driver.logs(cid, follow=True):
                        output(line.message)
                    info = await self._driver.inspect(cid)
            except TimeoutError:
                await self._driver.stop(cid, 0)
                raise StepFailedError(f"timed out after {request.timeout:g}s") from None
            if info.exit_code != 0:
                raise StepFailedError(f"exited with code {info.exit_code}")
            return collect(self.work_dir / "containers" / cid / "upper", skip)
        except DriverError as exc:
            raise StepFailedError(f"could not run the container: {exc}") from None
        finally:
            if created:
                with contextlib.suppress(DriverError):
                    await self._driver.stop(cid, 0)
                with contextlib.suppress(DriverError):
                    await self._driver.remove(cid)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(spec.log_path)
