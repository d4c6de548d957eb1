"""What a pod takes from ConfigMaps and Secrets: its references, a container's env, a volume's files.

Pure functions of the pod and a ``Lookup`` (``(kind, namespace, name) -> {key: bytes} | None``,
None when the object is unknown on this node). Kubernetes' rules apply: ``envFrom`` sources in
order (``prefix`` prepended, keys that are not valid variable names skipped), then ``env`` entries
override; an ``optional`` reference to a missing object or key contributes nothing; a missing
non-optional one raises ``ConfigMissing`` naming the field, the object and the key (the container
waits with CreateContainerConfigError). A volume's ``items`` pick keys and paths, else every key
becomes a file; ``defaultMode``/``mode`` set file modes (0644 by default). Values never appear in
errors. It must not do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from shoal.model.pod import Container, KeyToPath, Pod, Volume

__all__ = ["ConfigKey", "ConfigKind", "ConfigMissing", "Lookup", "ProjectedFile", "container_env", "pod_refs",
           "volume_files"]

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
DEFAULT_MODE = 0o644


class ConfigKind(StrEnum):
    CONFIG_MAP = "ConfigMap"
    SECRET = "Secret"


@dataclass(frozen=True, slots=True, order=True)
class ConfigKey:
    kind: ConfigKind
    namespace: str
    name: str

    def __str__(self) -> str:
        return f'{self.kind.value} "{self.namespace}/{self.name}"'


Lookup = Callable[[ConfigKey], Mapping[str, bytes] | None]


class ConfigMissing(Exception):
    """A non-optional ConfigMap/Secret (or one of its keys) a container needs is not there."""

    def __init__(self, field: str, key: ConfigKey, item: str = "") -> None:
        self.field, self.key, self.item = field, key, item
        what = f'key "{item}" of {key}' if item else str(key)
        fix = f"add the key to the {key.kind.value}" if item else f"create the {key.kind.value}"
        super().__init__(f"{field}: {what} not found; {fix} or mark the reference optional: true")


@dataclass(frozen=True, slots=True)
class ProjectedFile:
    path: str  # relative to the volume's root
    content: bytes
    mode: int


def _namespace(pod: Pod) -> str:
    return pod.metadata.namespace or "default"


def _container_refs(c: Container, namespace: str) -> Iterable[ConfigKey]:
    for src in c.env_from:
        if src.config_map_ref is not None:
            yield ConfigKey(ConfigKind.CONFIG_MAP, namespace, src.config_map_ref.name)
        if src.secret_ref is not None:
            yield ConfigKey(ConfigKind.SECRET, namespace, src.secret_ref.name)
    for var in c.env:
        if var.value_from is None:
            continue
        if var.value_from.config_map_key_ref is not None:
            yield ConfigKey(ConfigKind.CONFIG_MAP, namespace, var.value_from.config_map_key_ref.name)
        if var.value_from.secret_key_ref is not None:
            yield ConfigKey(ConfigKind.SECRET, namespace, var.value_from.secret_key_ref.name)


def _volume_ref(vol: Volume, namespace: str) -> ConfigKey | None:
    if vol.config_map is not None:
        return ConfigKey(ConfigKind.CONFIG_MAP, namespace, vol.config_map.name)
    if vol.secret is not None:
        return ConfigKey(ConfigKind.SECRET, namespace, vol.secret.secret_name or vol.secret.name)
    return None


def pod_refs(pod: Pod) -> frozenset[ConfigKey]:
    """Every ConfigMap and Secret the pod's containers, init containers and volumes name."""
    namespace = _namespace(pod)
    refs: set[ConfigKey] = set()
    for c in (*pod.spec.init_containers, *pod.spec.containers):
        refs.update(_container_refs(c, namespace))
    for vol in pod.spec.volumes:
        ref = _volume_ref(vol, namespace)
        if ref is not None:
            refs.add(ref)
    return frozenset(refs)


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def container_env(c: Container, namespace: str, lookup: Lookup, path: str) -> list[tuple[str, str]]:
    """The variables ``c`` gets from ConfigMaps/Secrets and ``env``, in Kubernetes' precedence
    order (later wins); plain ``value`` entries included."""
    out: list[tuple[str, str]] = []
    for i, src in enumerate(c.env_from):
        for ref, kind, field in ((src.config_map_ref, ConfigKind.CONFIG_MAP, "configMapRef"),
                                 (src.secret_ref, ConfigKind.SECRET, "secretRef")):
            if ref is None:
                continue
            key = ConfigKey(kind, namespace, ref.name)
            data = lookup(key)
            if data is None:
                if ref.optional:
                    continue
                raise ConfigMissing(f"{path}.envFrom[{i}].{field}", key)
            out.extend((src.prefix + name, _text(value)) for name, value in sorted(data.items())
                       if _ENV_NAME.match(src.prefix + name))
    for i, var in enumerate(c.env):
        source = var.value_from
        if source is None:
            out.append((var.name, var.value))
            continue
        for kref, kind, field in ((source.config_map_key_ref, ConfigKind.CONFIG_MAP, "configMapKeyRef"),
                                  (source.secret_key_ref, ConfigKind.SECRET, "secretKeyRef")):
            if kref is None:
                continue
            key = ConfigKey(kind, namespace, kref.name)
            data = lookup(key)
            where = f"{path}.env[{i}].valueFrom.{field}"
            if data is None:
                if not kref.optional:
                    raise ConfigMissing(where, key)
            elif kref.key in data:
                out.append((var.name, _text(data[kref.key])))
            elif not kref.optional:
                raise ConfigMissing(where, key, kref.key)
    return out


def _safe_path(path: str, where: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or ".." in parts or any(p.startswith("..") for p in parts):
        raise ValueError(f"{where}: path {path!r} must be relative, without '..' elements")
    return path


def _mode(mode: int | None, where: str) -> int:
    if mode is None:
        return DEFAULT_MODE
    if not 0 <= mode <= 0o777:
        raise ValueError(f"{where}: mode {mode} is not in 0..0777 (octal 0644 is decimal 420)")
    return mode


def volume_files(vol: Volume, namespace: str, lookup: Lookup, path: str) -> list[ProjectedFile] | None:
    """The files of a configMap/secret volume; [] for an optional missing object; None when ``vol``
    is not such a volume. ``ConfigMissing`` for a missing non-optional object or item key."""
    key = _volume_ref(vol, namespace)
    source = vol.config_map if vol.config_map is not None else vol.secret
    if key is None or source is None:
        return None
    where = f"{path}.{'configMap' if vol.config_map is not None else 'secret'}"
    default = _mode(source.default_mode, f"{where}.defaultMode")
    data = lookup(key)
    if data is None:
        if source.optional:
            return []
        raise ConfigMissing(where, key)
    items: Iterable[KeyToPath] = source.items or [KeyToPath(key=k, path=k) for k in sorted(data)]
    files = []
    for i, item in enumerate(items):
        if item.key not in data:
            if source.optional:
                continue
            raise ConfigMissing(f"{where}.items[{i}]", key, item.key)
        mode = default if item.mode is None else _mode(item.mode, f"{where}.items[{i}].mode")
        files.append(ProjectedFile(_safe_path(item.path, f"{where}.items[{i}]"), data[item.key], mode))
    return files
