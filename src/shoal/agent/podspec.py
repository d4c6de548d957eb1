"""From a Pod's container to the runtime's ContainerSpec: command, env, user, limits, security, volumes.

Pure: the image's defaults arrive as ``ImageDefaults``, the unpacked layers as lower dirs, the
sandbox as namespace joins, and host paths (log file, emptyDir dirs) from the caller. Kubernetes'
rules apply: ``command`` replaces the image's Entrypoint, ``args`` its Cmd; env from ConfigMaps and
Secrets is resolved through a ``configenv.Lookup`` (``ConfigMissing`` when a non-optional one is
not there); configMap/secret volumes are mounted read-only. What this agent cannot do yet
(hostPath, local volumes, subPath) raises ``SpecError`` naming the field, never runs
half-configured. It must not touch the host.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shoal.agent.configenv import Lookup, container_env
from shoal.model.pod import Container, Pod, SecurityContext
from shoal.model.quantity import QuantityError, parse_bytes, parse_cpu_millis
from shoal.runtime.protocol import (
    ContainerSpec,
    Mount,
    NamespaceJoin,
    Resources,
    SeccompMode,
    Security,
    SpecError,
    User,
)

__all__ = ["DEFAULT_PATH", "ImageDefaults", "build_container_spec", "check_supported", "container_id",
           "volume_names"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ID_SAFE = re.compile(r"[^a-zA-Z0-9_.-]")


@dataclass(frozen=True, slots=True)
class ImageDefaults:
    """The parts of an image config a container inherits."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    working_dir: str = ""
    user: str = ""

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> ImageDefaults:
        cfg = config or {}
        env = []
        for item in cfg.get("Env") or []:
            key, _, value = str(item).partition("=")
            env.append((key, value))
        return cls(entrypoint=tuple(str(a) for a in cfg.get("Entrypoint") or ()),
                   cmd=tuple(str(a) for a in cfg.get("Cmd") or ()), env=tuple(env),
                   working_dir=str(cfg.get("WorkingDir") or ""), user=str(cfg.get("User") or ""))


def container_id(pod_uid: str, name: str) -> str:
    """A stable runtime id for a pod's container, so a restarted agent finds it again."""
    return _ID_SAFE.sub("-", f"{pod_uid}-{name}")


def _argv(c: Container, image: ImageDefaults, path: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    if c.command:
        return tuple(c.command), tuple(c.args)
    args = tuple(c.args) if c.args else image.cmd
    if not image.entrypoint and not args:
        raise SpecError(f"{path}.command", f"image {c.image!r} has no Entrypoint or Cmd; set command, "
                        'e.g. command: ["/bin/sh", "-c", "..."]')
    return image.entrypoint, args


def _env(c: Container, image: ImageDefaults, path: str, namespace: str,
         config: Lookup | None) -> tuple[tuple[str, str], ...]:
    merged: dict[str, str] = {"PATH": DEFAULT_PATH}
    merged.update(dict(image.env))
    if config is None:
        if c.env_from:
            raise SpecError(f"{path}.envFrom", "this agent has no ConfigMap/Secret source; set env values directly")
        for i, var in enumerate(c.env):
            if var.value_from is not None:
                raise SpecError(f"{path}.env[{i}].valueFrom", "this agent has no ConfigMap/Secret source; set "
                                "value directly")
        merged.update((var.name, var.value) for var in c.env)
    else:
        merged.update(container_env(c, namespace, config, path))
    return tuple(merged.items())


def _user(sc: SecurityContext | None, image: ImageDefaults, path: str) -> User:
    uid = sc.run_as_user if sc and sc.run_as_user is not None else None
    gid = sc.run_as_group if sc and sc.run_as_group is not None else None
    if uid is None and image.user:
        name, _, group = image.user.partition(":")
        if not name.isdigit() or (group and not group.isdigit()):
            raise SpecError(f"{path}.securityContext.runAsUser", f"the image's user {image.user!r} is a name; "
                            "this agent needs numeric ids: set runAsUser (and runAsGroup)")
        uid, gid = int(name), int(group) if group else gid
    if sc and sc.run_as_non_root and not uid:
        raise SpecError(f"{path}.securityContext.runAsNonRoot", "the container would run as root; set runAsUser")
    return User(uid=uid or 0, gid=gid if gid is not None else (uid or 0))


def _resources(c: Container, path: str) -> Resources:
    limits, requests = c.resources.limits, c.resources.requests
    try:
        cpu_limit = parse_cpu_millis(limits["cpu"]) if "cpu" in limits else None
        cpu_request = parse_cpu_millis(requests["cpu"]) if "cpu" in requests else cpu_limit
        memory = parse_bytes(limits["memory"]) if "memory" in limits else None
    except QuantityError as exc:
        raise SpecError(f"{path}.resources", str(exc)) from None
    return Resources(cpu_request_millis=cpu_request, cpu_limit_millis=cpu_limit, memory_limit_bytes=memory)


def _security(sc: SecurityContext | None) -> Security:
    if sc is None:
        return Security()
    seccomp = SeccompMode.RUNTIME_DEFAULT
    if sc.seccomp_profile is not None and sc.seccomp_profile.type == SeccompMode.UNCONFINED.value:
        seccomp = SeccompMode.UNCONFINED
    caps = sc.capabilities
    return Security(read_only_root=sc.read_only_root_filesystem,
                    cap_add=tuple(caps.add) if caps else (), cap_drop=tuple(caps.drop) if caps else (),
                    privileged=sc.privileged, seccomp=seccomp, apparmor_profile=sc.app_armor_profile,
                    no_new_privileges=sc.allow_privilege_escalation is not True)


def check_supported(pod: Pod) -> None:
    """Refuse, naming the field, what this agent cannot run yet rather than run the pod without it."""
    volume_names(pod)


def volume_names(pod: Pod) -> list[str]:
    """Names of the pod's volumes (emptyDir, configMap, secret); any other kind raises SpecError."""
    names = []
    for i, vol in enumerate(pod.spec.volumes):
        if vol.empty_dir is not None or vol.config_map is not None or vol.secret is not None:
            names.append(vol.name)
        else:
            raise SpecError(f"spec.volumes[{i}]", f"volume {vol.name!r}: only emptyDir, configMap and secret "
                            "volumes are supported by this agent yet")
    return names


def _mounts(c: Container, volume_dirs: Mapping[str, str], read_only: set[str], path: str) -> tuple[Mount, ...]:
    mounts = []
    for i, vm in enumerate(c.volume_mounts):
        source = volume_dirs.get(vm.name)
        if source is None:
            raise SpecError(f"{path}.volumeMounts[{i}].name", f"no volume named {vm.name!r} in spec.volumes")
        if vm.sub_path:
            raise SpecError(f"{path}.volumeMounts[{i}].subPath", "subPath is not supported by this agent yet")
        ro = vm.read_only or vm.name in read_only
        mounts.append(Mount(destination=vm.mount_path, source=source, read_only=ro,
                            options=("rbind", "ro" if ro else "rw")))
    return tuple(mounts)


def build_container_spec(pod: Pod, index: int, image: ImageDefaults, *, lower_dirs: Sequence[str],
                         joins: Sequence[NamespaceJoin], log_path: str,
                         volume_dirs: Mapping[str, str], config: Lookup | None = None,
                         init: bool = False) -> ContainerSpec:
    """The runtime spec of ``spec.containers[index]`` (``spec.initContainers[index]`` with ``init``);
    ``config`` resolves ConfigMap/Secret env (None: such env is refused)."""
    c = (pod.spec.init_containers if init else pod.spec.containers)[index]
    path = f"spec.{'initContainers' if init else 'containers'}[{index}]"
    meta = pod.metadata
    command, args = _argv(c, image, path)
    read_only = {v.name for v in pod.spec.volumes if v.config_map is not None or v.secret is not None}
    return ContainerSpec(
        id=container_id(meta.uid, c.name),
        name=c.name,
        pod_uid=meta.uid,
        pod_name=meta.name,
        pod_namespace=meta.namespace or "default",
        lower_dirs=tuple(lower_dirs),
        command=command,
        args=args,
        env=_env(c, image, path, meta.namespace or "default", config),
        working_dir=c.working_dir or image.working_dir or "/",
        user=_user(c.security_context, image, path),
        mounts=_mounts(c, volume_dirs, read_only, path),
        resources=_resources(c, path),
        security=_security(c.security_context),
        join_namespaces=tuple(joins),
        hostname=pod.spec.hostname or meta.name,
        log_path=log_path,
        runtime=pod.spec.runtime.value,
    )
