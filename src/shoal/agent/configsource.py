"""The ConfigMaps and Secrets this node's pods use: followed from the server, kept in the local cache.

``ConfigSource`` knows which objects each pod references (``watch_pod``), follows ConfigMaps and
Secrets (list + watch) only in the namespaces those pods live in, keeps the referenced ones in
the agent's SQLite cache (so a restarted agent without the server still starts its pods), answers
``lookup`` for ``configenv``, and calls a pod's ``on_change`` when an object it references
changes, appears or goes. ``sync_volumes`` writes a pod's configMap/secret volume dirs
(``configvolume``: in place, atomically). It must not create or restart containers and never logs
a value.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from shoal.agent.cache import PodCache
from shoal.agent.configenv import ConfigKey, ConfigKind, ConfigMissing, volume_files
from shoal.agent.configvolume import write_volume
from shoal.client import AsyncClient, ClientError, ServerUnreachable
from shoal.model.pod import Pod

__all__ = ["ConfigSource", "config_data", "sync_volumes"]

log = logging.getLogger("shoal.agent.config")
_RETRY_MAX = 15.0
_NAMESPACE_POLL = 0.5  # how soon a pod in a namespace not followed yet gets its watch
_PLURAL = {ConfigKind.CONFIG_MAP: "configmaps", ConfigKind.SECRET: "secrets"}


def config_data(kind: ConfigKind, obj: Mapping[str, Any]) -> dict[str, bytes]:
    """An object's keys and decoded values (Secret ``data`` and ConfigMap ``binaryData`` are base64)."""
    name = (obj.get("metadata") or {}).get("name")
    out: dict[str, bytes] = {}
    encoded = dict(obj.get("binaryData") or {}) if kind is ConfigKind.CONFIG_MAP else dict(obj.get("data") or {})
    if kind is ConfigKind.CONFIG_MAP:
        out.update((str(k), str(v).encode()) for k, v in (obj.get("data") or {}).items())
    for key, value in encoded.items():
        try:
            out[str(key)] = base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError):
            log.warning('%s "%s": key %s is not base64; left out', kind.value, name, key)
    return out


class ConfigSource:
    def __init__(self, cache: PodCache) -> None:
        self._cache = cache
        self._data: dict[ConfigKey, dict[str, bytes]] = {}
        for kind, namespace, name, data in cache.configs():
            with contextlib.suppress(ValueError):
                self._data[ConfigKey(ConfigKind(kind), namespace, name)] = data
        self._pods: dict[str, tuple[frozenset[ConfigKey], Callable[[], None]]] = {}
        self._listed: set[tuple[ConfigKind, str]] = set()  # (kind, namespace) heard from the server

    # ----- what pods use -------------------------------------------------------------------------

    def lookup(self, key: ConfigKey) -> Mapping[str, bytes] | None:
        return self._data.get(key)

    def watch_pod(self, uid: str, refs: frozenset[ConfigKey], on_change: Callable[[], None]) -> None:
        """Pod ``uid`` uses ``refs``; call ``on_change`` when one of them changes."""
        before = self._pods.get(uid, (frozenset(), on_change))[0]
        self._pods[uid] = (refs, on_change)
        for key in refs - before:  # already followed: persist it now for offline restarts
            if key in self._data:
                self._cache.put_config(key.kind.value, key.namespace, key.name, self._data[key])

    def forget_pod(self, uid: str) -> None:
        self._pods.pop(uid, None)
        used = self._referenced()
        for key in [k for k in self._data if k not in used and (k.kind, k.namespace) not in self._listed]:
            del self._data[key]
        for kind, namespace, name, _ in self._cache.configs():
            with contextlib.suppress(ValueError):
                if ConfigKey(ConfigKind(kind), namespace, name) not in used:
                    self._cache.delete_config(kind, namespace, name)

    def namespaces(self) -> set[str]:
        return {key.namespace for refs, _ in self._pods.values() for key in refs}

    def _referenced(self) -> set[ConfigKey]:
        return {key for refs, _ in self._pods.values() for key in refs}

    # ----- what the server says ------------------------------------------------------------------

    def set_object(self, key: ConfigKey, data: dict[str, bytes] | None) -> None:
        """The server's current data of ``key`` (None: it does not exist)."""
        if self._data.get(key) == data:
            return
        referenced = key in self._referenced()
        if data is None:
            self._data.pop(key, None)
            self._cache.delete_config(key.kind.value, key.namespace, key.name)
        else:
            self._data[key] = data
            if referenced:
                self._cache.put_config(key.kind.value, key.namespace, key.name, data)
        if referenced:
            log.info("%s changed; refreshing the pods that use it", key)
            for refs, on_change in list(self._pods.values()):
                if key in refs:
                    on_change()

    def set_listed(self, kind: ConfigKind, namespace: str, objects: dict[str, dict[str, bytes]]) -> None:
        """A full list of ``kind`` in ``namespace``: what is not in it does not exist."""
        self._listed.add((kind, namespace))
        gone = [k for k in self._data if k.kind is kind and k.namespace == namespace and k.name not in objects]
        for key in gone:
            self.set_object(key, None)
        for name, data in objects.items():
            self.set_object(ConfigKey(kind, namespace, name), data)

    async def _follow(self, client: AsyncClient, kind: ConfigKind, namespace: str) -> None:
        delay = 0.0
        while True:
            try:
                items, revision = await client.list(_PLURAL[kind], namespace)
                self.set_listed(kind, namespace, {str(o["metadata"]["name"]): config_data(kind, o) for o in items})
                delay = 0.0
                async for event, obj in client.watch(_PLURAL[kind], namespace, revision):
                    key = ConfigKey(kind, namespace, str((obj.get("metadata") or {}).get("name") or ""))
                    if event in ("ADDED", "MODIFIED"):
                        self.set_object(key, config_data(kind, obj))
                    elif event == "DELETED":
                        self.set_object(key, None)
                delay = 0.2  # the server closed the watch: re-list, not at once
            except ClientError as exc:
                delay = min(max(delay * 2, 0.5), _RETRY_MAX)
                level = logging.INFO if isinstance(exc, ServerUnreachable) else logging.WARNING
                log.log(level, "%s watch in %s: %s (re-listing in %gs)", kind.value, namespace, exc, delay)
            await asyncio.sleep(delay)

    async def _follow_namespace(self, client: AsyncClient, namespace: str) -> None:
        async with asyncio.TaskGroup() as group:
            for kind in ConfigKind:
                group.create_task(self._follow(client, kind, namespace), name=f"{kind.value}s in {namespace}")

    async def run(self, client: AsyncClient, stop: asyncio.Event) -> None:
        """Follow the namespaces this node's pods live in, until ``stop``."""
        followed: dict[str, asyncio.Task[None]] = {}
        try:
            async with asyncio.TaskGroup() as group:
                while not stop.is_set():
                    wanted = self.namespaces()
                    for namespace in wanted - followed.keys():
                        followed[namespace] = group.create_task(self._follow_namespace(client, namespace))
                    for namespace in followed.keys() - wanted:
                        followed.pop(namespace).cancel()
                        self._listed = {(k, ns) for k, ns in self._listed if ns != namespace}
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(_NAMESPACE_POLL):
                            await stop.wait()
                for task in followed.values():
                    task.cancel()
        finally:
            followed.clear()


def sync_volumes(pod: Pod, source: ConfigSource | None, pod_dir: Path) -> str:
    """Write the pod's configMap/secret volume dirs (unchanged ones are left alone); the first
    problem as a message ('' when all are in place). A volume keeps its last content on error."""
    namespace = pod.metadata.namespace or "default"
    problem = ""
    for i, vol in enumerate(pod.spec.volumes):
        if vol.config_map is None and vol.secret is None:
            continue
        if source is None:
            return f"spec.volumes[{i}]: this agent has no ConfigMap/Secret source"
        try:
            files = volume_files(vol, namespace, source.lookup, f"spec.volumes[{i}]")
        except (ConfigMissing, ValueError) as exc:
            problem = problem or str(exc)
            continue
        if files is not None and write_volume(pod_dir / "volumes" / vol.name, files):
            log.info("pod %s/%s: volume %s written", namespace, pod.metadata.name, vol.name)
    return problem
