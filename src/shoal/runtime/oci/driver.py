"""OciDriver: the Driver protocol on runc, with each container supervised by its own conmon.

A container's bundle lives in ``root_dir/<id>`` (config.json, the persisted ContainerSpec,
overlay upper/work and mount point, conmon's pid/exit/oom files, the CRI log). Containers
outlive the driver and its event loop; ``recover()`` rebuilds the picture from bundles and
``runc state``. It must not decide restart or eviction policy: the agent does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from shoal.model.pod import ContainerState
from shoal.runtime.lifecycle import transition
from shoal.runtime.oci import cgroups, rootfs
from shoal.runtime.oci.conmon import launch_conmon, pid_alive, run, wait_pid_exit
from shoal.runtime.oci.execstream import start_runc_exec
from shoal.runtime.oci.logs import read_log
from shoal.runtime.oci.spec import build_config, cgroups_path
from shoal.runtime.protocol import (
    Capabilities,
    ContainerInfo,
    ContainerNotFound,
    ContainerSpec,
    DriverError,
    ExecResult,
    ExecStream,
    LogLine,
    Stats,
    StopReason,
    TerminalSize,
)

__all__ = ["OciDriver"]

_RUNC_STATES = {
    "created": ContainerState.CREATED,
    "running": ContainerState.RUNNING,
    "pausing": ContainerState.PAUSED,
    "paused": ContainerState.PAUSED,
    "stopped": ContainerState.STOPPED,
}
_KILL_WAIT = 10.0


class OciDriver:
    def __init__(
        self,
        root_dir: str | Path = "/var/lib/shoal/containers",
        runc_root: str | Path = "/run/shoal/runc",
        cgroup_parent: str = "/shoal",
        runc: str = "/usr/sbin/runc",
        conmon: str = "/usr/bin/conmon",
        log_size_max: int = 10 << 20,
    ) -> None:
        self.root_dir = Path(root_dir)
        self.runc_root = Path(runc_root)
        self.cgroup_parent = cgroup_parent
        self._runc = runc
        self._conmon = conmon
        self._log_size_max = log_size_max
        self._host = cgroups.host_facts()
        self._locks: dict[str, asyncio.Lock] = {}

    # ----- paths and small helpers -------------------------------------------------------------

    def _bundle(self, cid: str) -> Path:
        if not cid or "/" in cid or cid.startswith("."):
            raise ContainerNotFound(cid)
        return self.root_dir / cid

    def _load_spec(self, cid: str) -> ContainerSpec:
        try:
            return msgspec.json.decode((self._bundle(cid) / "spec.json").read_bytes(), type=ContainerSpec)
        except FileNotFoundError:
            raise ContainerNotFound(cid) from None

    def _log_path(self, spec: ContainerSpec) -> Path:
        return Path(spec.log_path) if spec.log_path else self._bundle(spec.id) / "ctr.log"

    def _cgroups(self, cid: str) -> str:
        return (self._bundle(cid) / "cgroup").read_text()

    def _lock(self, cid: str) -> asyncio.Lock:
        return self._locks.setdefault(cid, asyncio.Lock())

    def _conmon_pid(self, cid: str) -> int:
        try:
            return int((self._bundle(cid) / "conmon.pid").read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    async def _runc_cmd(self, *args: str, check: bool = True, timeout: float = 30.0) -> bytes:
        result = await run([self._runc, "--root", str(self.runc_root), *args], timeout)
        if check and result.returncode != 0:
            msg = result.stderr.decode(errors="replace").strip().splitlines()
            raise DriverError(f"runc {args[0]} failed: {msg[-1] if msg else 'exit ' + str(result.returncode)}")
        return result.stdout

    # ----- protocol ----------------------------------------------------------------------------

    async def fingerprint(self) -> Capabilities:
        out = (await run([self._runc, "--version"])).stdout.decode()
        version = out.split()[2] if out.startswith("runc version") else "unknown"
        try:
            userns = int(Path("/proc/sys/user/max_user_namespaces").read_text()) > 0
        except OSError:
            userns = False
        return Capabilities(
            runtime="runc",
            version=version,
            cgroup_version=self._host.cgroup_version,
            seccomp=True,
            apparmor=self._host.apparmor_enabled,
            user_namespaces=userns,
        )

    async def create(self, spec: ContainerSpec) -> ContainerInfo:
        bundle = self.root_dir / spec.id
        cgroup = cgroups_path(self.cgroup_parent, spec.pod_uid, spec.id)
        root = "rootfs" if spec.lower_dirs else spec.rootfs_path
        config = build_config(spec, self._host, cgroup, rootfs=root)
        async with self._lock(spec.id):
            if bundle.exists():
                raise DriverError(f"container {spec.id!r} already exists; remove it first or use another id")
            bundle.mkdir(parents=True)
            try:
                (bundle / "spec.json").write_bytes(msgspec.json.encode(spec))
                (bundle / "config.json").write_text(json.dumps(config))
                (bundle / "cgroup").write_text(cgroup)
                await self._launch(spec)
            except BaseException:
                await self._teardown(spec.id)
                raise
        return await self.inspect(spec.id)

    async def _launch(self, spec: ContainerSpec) -> None:
        bundle = self._bundle(spec.id)
        if spec.lower_dirs:
            rootfs.mount_overlay(spec.lower_dirs, rootfs.overlay_paths(bundle))
        for name in ("exit", "persist"):
            (bundle / name).mkdir(exist_ok=True)
        for stale in (
            bundle / "exit" / spec.id,
            bundle / "persist" / "exit",
            bundle / "persist" / "oom",
            bundle / "oom",
            bundle / "started",
        ):
            stale.unlink(missing_ok=True)
        log_path = self._log_path(spec)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        sock_dir = self.root_dir / ".sock"
        sock_dir.mkdir(parents=True, exist_ok=True)
        self.runc_root.mkdir(parents=True, exist_ok=True)
        argv = [
            self._conmon,
            "--api-version",
            "1",
            "-c",
            spec.id,
            "-u",
            spec.id,
            "-n",
            spec.name,
            "-r",
            self._runc,
            "-b",
            str(bundle),
            "-p",
            str(bundle / "pidfile"),
            "-P",
            str(bundle / "conmon.pid"),
            "-l",
            f"k8s-file:{log_path}",
            "--log-size-max",
            str(self._log_size_max),
            "--exit-dir",
            str(bundle / "exit"),
            "--socket-dir-path",
            str(sock_dir),
            "--persist-dir",
            str(bundle / "persist"),
            "--runtime-arg",
            f"--root={self.runc_root}",
            "--no-sync-log",
        ]
        await launch_conmon(argv, bundle / "conmon.err")

    async def start(self, container_id: str) -> ContainerInfo:
        async with self._lock(container_id):
            info = await self.inspect(container_id)
            transition(info.state, ContainerState.RUNNING, container_id)
            if info.state is ContainerState.STOPPED:
                await self._runc_cmd("delete", "--force", container_id, check=False)
                await self._launch(self._load_spec(container_id))
            (self._bundle(container_id) / "started").write_text(datetime.now(UTC).isoformat())
            await self._runc_cmd("start", container_id)
        return await self.inspect(container_id)

    async def _simple(self, container_id: str, target: ContainerState, verb: str) -> ContainerInfo:
        async with self._lock(container_id):
            info = await self.inspect(container_id)
            transition(info.state, target, container_id)
            await self._runc_cmd(verb, container_id)
        return await self.inspect(container_id)

    async def pause(self, container_id: str) -> ContainerInfo:
        return await self._simple(container_id, ContainerState.PAUSED, "pause")

    async def resume(self, container_id: str) -> ContainerInfo:
        return await self._simple(container_id, ContainerState.RUNNING, "resume")

    async def stop(self, container_id: str, grace: float) -> ContainerInfo:
        async with self._lock(container_id):
            info = await self.inspect(container_id)
            if info.state is ContainerState.STOPPED:
                return info
            transition(info.state, ContainerState.STOPPED, container_id)
            conmon_pid = self._conmon_pid(container_id)
            await self._runc_cmd("kill", container_id, "TERM", check=False)
            if not await wait_pid_exit(conmon_pid, max(grace, 0.0)):
                await self._runc_cmd("kill", "--all", container_id, "KILL", check=False)
                if not await wait_pid_exit(conmon_pid, _KILL_WAIT):
                    raise DriverError(f"container {container_id!r} did not exit {_KILL_WAIT:g}s after SIGKILL")
        return await self.inspect(container_id)

    async def remove(self, container_id: str) -> None:
        async with self._lock(container_id):
            info = await self.inspect(container_id)
            transition(info.state, ContainerState.REMOVED, container_id)
            await self._teardown(container_id)
        self._locks.pop(container_id, None)

    async def _teardown(self, cid: str) -> None:
        bundle = self._bundle(cid)
        await self._runc_cmd("delete", "--force", cid, check=False)
        await wait_pid_exit(self._conmon_pid(cid), _KILL_WAIT)
        rootfs.unmount(rootfs.overlay_paths(bundle).merged)
        with contextlib.suppress(FileNotFoundError):
            cgroups.remove_dirs(self._cgroups(cid))
        shutil.rmtree(bundle, ignore_errors=True)

    async def inspect(self, container_id: str) -> ContainerInfo:
        spec = self._load_spec(container_id)
        bundle = self._bundle(container_id)
        result = await run([self._runc, "--root", str(self.runc_root), "state", container_id])
        pid = 0
        if result.returncode == 0:
            state_doc = json.loads(result.stdout)
            state = _RUNC_STATES.get(state_doc["status"], ContainerState.STOPPED)
            pid = int(state_doc.get("pid", 0)) if state is not ContainerState.STOPPED else 0
        else:
            # Unknown to runc (e.g. after a reboot): it is not running; start() will recreate it.
            state = ContainerState.STOPPED
        started = _read_time(bundle / "started")
        exit_code: int | None = None
        finished: datetime | None = None
        reason: StopReason | None = None
        if state is ContainerState.STOPPED:
            exit_file = bundle / "exit" / container_id
            with contextlib.suppress(FileNotFoundError, ValueError):
                exit_code = int(exit_file.read_text().strip())
                finished = datetime.fromtimestamp(exit_file.stat().st_mtime, UTC)
            reason = self._stop_reason(container_id, exit_code)
        return ContainerInfo(
            id=container_id,
            name=spec.name,
            pod_uid=spec.pod_uid,
            state=state,
            pid=pid,
            exit_code=exit_code,
            started_at=started,
            finished_at=finished,
            reason=reason,
        )

    def _stop_reason(self, cid: str, exit_code: int | None) -> StopReason:
        bundle = self._bundle(cid)
        oom = (bundle / "oom").exists() or (bundle / "persist" / "oom").exists()
        if not oom:
            with contextlib.suppress(FileNotFoundError):
                oom = cgroups.oom_killed(self._cgroups(cid))
        if oom:
            return StopReason.OOM_KILLED
        if exit_code is None:
            return StopReason.UNKNOWN
        return StopReason.COMPLETED if exit_code == 0 else StopReason.ERROR

    async def recover(self) -> list[ContainerInfo]:
        if not self.root_dir.is_dir():
            return []
        found: list[ContainerInfo] = []
        for bundle in sorted(self.root_dir.iterdir()):
            if (bundle / "spec.json").is_file():
                with contextlib.suppress(ContainerNotFound):
                    found.append(await self.inspect(bundle.name))
        return found

    async def logs(self, container_id: str, tail: int | None = None, follow: bool = False) -> AsyncIterator[LogLine]:
        spec = self._load_spec(container_id)
        conmon_pid = self._conmon_pid(container_id)
        async for line in read_log(self._log_path(spec), tail, follow, lambda: pid_alive(conmon_pid)):
            yield line

    async def exec(self, container_id: str, argv: Sequence[str], timeout: float = 30.0) -> ExecResult:
        info = await self.inspect(container_id)
        if info.state is not ContainerState.RUNNING:
            raise DriverError(f"container {container_id!r} is {info.state.value}; exec needs it Running")
        if not argv:
            raise DriverError("exec needs a command, e.g. ['sh', '-c', 'echo hi']")
        result = await run([self._runc, "--root", str(self.runc_root), "exec", container_id, *argv], timeout)
        return ExecResult(exit_code=result.returncode, stdout=result.stdout, stderr=result.stderr)

    async def exec_stream(self, container_id: str, argv: Sequence[str], *, tty: bool = False, stdin: bool = False,
                          size: TerminalSize | None = None) -> ExecStream:
        info = await self.inspect(container_id)
        if info.state is not ContainerState.RUNNING:
            raise DriverError(f"container {container_id!r} is {info.state.value}; exec needs it Running")
        if not argv:
            raise DriverError("exec needs a command, e.g. ['sh']")
        return await start_runc_exec([self._runc, "--root", str(self.runc_root)], container_id, argv, tty=tty,
                                     stdin=stdin, size=size)

    async def stats(self, container_id: str) -> Stats:
        self._load_spec(container_id)
        return cgroups.read_stats(self._cgroups(container_id))


def _read_time(path: Path) -> datetime | None:
    try:
        return datetime.fromisoformat(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
