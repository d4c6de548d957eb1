"""``PodNetwork``: a pod's network namespace wired by the node's CNI conflist.

Owns the pod sandbox network lifecycle: ``setup`` creates the named namespace under
``netns_dir/<pod-uid>``, runs CNI ADD and returns the pod's address; ``teardown`` runs CNI DEL
and removes the namespace; ``recover`` after an agent restart keeps the sandboxes of live pods
without re-adding them and tears down the rest. A record per pod (written before ADD, completed
after it) under ``<data_dir>/net/sandboxes`` makes this crash-safe: any ADD that may have
reserved an address has a record, so its DEL always happens and host-local never leaks. It must
not touch containers or routes: the runtime joins ``netns_path``, ``routes`` handles other nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from shoal.net.cni import (
    DEFAULT_CNI_PATH,
    CniInvoker,
    NetworkConfigList,
    RuntimeConf,
    add_network_list,
    check_network_list,
    del_network_list,
    load_conflist,
    parse_conflist,
)
from shoal.net.netns import create_netns, netns_exists, remove_netns
from shoal.net.protocol import Bandwidth, NetworkError, PodSandboxNetwork, PortMapping, check_pod_uid
from shoal.net.result import parse_result

__all__ = ["DEFAULT_NETNS_DIR", "PodNetwork", "net_dir"]

DEFAULT_NETNS_DIR = Path("/run/shoal/netns")


def net_dir(data_dir: Path) -> Path:
    """Where pod networking keeps its files inside the agent's data dir."""
    return data_dir / "net"


def _is_uid(name: str) -> bool:
    try:
        check_pod_uid(name)
    except NetworkError:
        return False
    return True


class PodNetwork:
    """Pod sandboxes of one node. ``conflist_path`` defaults to ``<data_dir>/net/shoal.conflist``
    (see ``conflist.write_conflist``); it is read at every setup so a user's edits apply to new pods."""

    def __init__(
        self,
        data_dir: Path,
        *,
        conflist_path: Path | None = None,
        netns_dir: Path = DEFAULT_NETNS_DIR,
        cni_path: Sequence[str] = DEFAULT_CNI_PATH,
        ifname: str = "eth0",
        timeout: float = 30.0,
    ) -> None:
        self.conflist_path = conflist_path or net_dir(data_dir) / "shoal.conflist"
        self.records_dir = net_dir(data_dir) / "sandboxes"
        self.netns_dir = netns_dir
        self.ifname = ifname
        self._invoker = CniInvoker(cni_path, timeout)
        self._locks: dict[str, asyncio.Lock] = {}

    def netns_path(self, pod_uid: str) -> Path:
        return self.netns_dir / check_pod_uid(pod_uid)

    def _record_path(self, pod_uid: str) -> Path:
        return self.records_dir / f"{pod_uid}.json"

    def _lock(self, pod_uid: str) -> asyncio.Lock:
        return self._locks.setdefault(pod_uid, asyncio.Lock())

    def _read_record(self, pod_uid: str) -> dict[str, Any] | None:
        try:
            doc = json.loads(self._record_path(pod_uid).read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable: treat as a half-made sandbox, torn down with an empty cache
        return doc if isinstance(doc, dict) else {}

    def _write_record(self, pod_uid: str, record: dict[str, Any]) -> None:
        self.records_dir.mkdir(parents=True, exist_ok=True)
        path = self._record_path(pod_uid)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _runtime_conf(self, pod_uid: str, record: dict[str, Any], netns: str) -> RuntimeConf:
        caps: dict[str, Any] = {}
        if record.get("portMappings"):
            caps["portMappings"] = record["portMappings"]
        if record.get("bandwidth"):
            caps["bandwidth"] = record["bandwidth"]
        args = (
            ("IgnoreUnknown", "1"),
            ("K8S_POD_NAMESPACE", str(record.get("namespace", ""))),
            ("K8S_POD_NAME", str(record.get("podName", ""))),
            ("K8S_POD_UID", pod_uid),
        )
        return RuntimeConf(pod_uid, netns, str(record.get("ifname") or self.ifname), args, caps)

    def _conflist(self, record: dict[str, Any]) -> NetworkConfigList:
        cached = record.get("conflist")
        if isinstance(cached, dict):  # DEL/CHECK use the chain the pod was added with
            return parse_conflist(json.dumps(cached), f"{self.conflist_path} (as recorded at ADD)")
        return load_conflist(self.conflist_path)

    def _sandbox(self, pod_uid: str, record: dict[str, Any]) -> PodSandboxNetwork:
        ifname = str(record.get("ifname") or self.ifname)
        ip = parse_result(record["result"]).pod_ip(ifname)
        return PodSandboxNetwork(
            pod_uid,
            str(self.netns_path(pod_uid)),
            str(ip.address.ip),
            str(ip.gateway) if ip.gateway else "",
            ip.address.network.prefixlen,
            ifname,
        )

    async def setup(
        self,
        pod_uid: str,
        pod_name: str,
        namespace: str,
        port_mappings: Sequence[PortMapping] = (),
        bandwidth: Bandwidth | None = None,
    ) -> PodSandboxNetwork:
        path = self.netns_path(pod_uid)
        async with self._lock(pod_uid):
            record = self._read_record(pod_uid)
            if record and record.get("result") is not None and netns_exists(path):
                return self._sandbox(pod_uid, record)
            if record is not None or netns_exists(path):
                await self._teardown(pod_uid)  # half-made or its namespace vanished (reboot): start clean
            conflist = load_conflist(self.conflist_path)
            record = {
                "podUID": pod_uid,
                "podName": pod_name,
                "namespace": namespace,
                "ifname": self.ifname,
                "portMappings": [p.to_cni() for p in port_mappings],
                "bandwidth": bandwidth.to_cni() if bandwidth else None,
                "conflist": {
                    "name": conflist.name,
                    "cniVersion": conflist.cni_version,
                    "disableCheck": conflist.disable_check,
                    "plugins": list(conflist.plugins),
                },
                "result": None,
            }
            self._write_record(pod_uid, record)
            try:
                await create_netns(path)
                raw = await add_network_list(
                    self._invoker, conflist, self._runtime_conf(pod_uid, record, str(path))
                )
                record["result"] = raw
                sandbox = self._sandbox(pod_uid, record)
                self._write_record(pod_uid, record)
            except BaseException:
                # if the DEL fails too, the record stays and recover() or the next setup retries it
                with contextlib.suppress(NetworkError):
                    await asyncio.shield(self._teardown(pod_uid))
                raise
            return sandbox

    async def teardown(self, pod_uid: str) -> None:
        check_pod_uid(pod_uid)
        async with self._lock(pod_uid):
            await self._teardown(pod_uid)
        self._locks.pop(pod_uid, None)

    async def _teardown(self, pod_uid: str) -> None:
        path = self.netns_path(pod_uid)
        record = self._read_record(pod_uid)
        if record is None and not netns_exists(path):
            return
        record = record or {}
        if record.get("conflist") is not None or record.get("result") is not None or netns_exists(path):
            netns = str(path) if netns_exists(path) else ""
            await del_network_list(
                self._invoker,
                self._conflist(record),
                self._runtime_conf(pod_uid, record, netns),
                record.get("result"),
            )
        remove_netns(path)
        self._record_path(pod_uid).unlink(missing_ok=True)

    async def check(self, pod_uid: str) -> None:
        """CNI CHECK of a set-up sandbox; raises ``CniError`` naming the plugin that found drift."""
        path = self.netns_path(pod_uid)
        record = self._read_record(pod_uid)
        if not record or record.get("result") is None or not netns_exists(path):
            raise NetworkError(f"pod {pod_uid} has no network sandbox on this node; set it up first")
        await check_network_list(
            self._invoker,
            self._conflist(record),
            self._runtime_conf(pod_uid, record, str(path)),
            record["result"],
        )

    def sandboxes(self) -> list[str]:
        """Pod uids that have a record or a namespace here (complete or not)."""
        uids = {p.stem for p in self.records_dir.glob("*.json")} if self.records_dir.is_dir() else set()
        if self.netns_dir.is_dir():
            uids |= {p.name for p in self.netns_dir.iterdir() if _is_uid(p.name)}
        return sorted(uids)

    async def recover(self, live_pod_uids: Collection[str]) -> list[PodSandboxNetwork]:
        """After a restart: return the complete sandboxes of live pods untouched; tear down the
        sandboxes of pods that are gone and the half-made ones (their pods get a fresh setup)."""
        live = set(live_pod_uids)
        kept: list[PodSandboxNetwork] = []
        failures: list[NetworkError] = []
        for uid in self.sandboxes():
            record = self._read_record(uid)
            complete = bool(record) and record is not None and record.get("result") is not None
            if uid in live and complete and netns_exists(self.netns_path(uid)):
                assert record is not None
                kept.append(self._sandbox(uid, record))
                continue
            try:
                await self.teardown(uid)
            except NetworkError as exc:
                failures.append(exc)
        if failures:
            raise NetworkError(
                f"{len(failures)} stale pod sandbox(es) could not be torn down; first: {failures[0]}"
            )
        return kept
