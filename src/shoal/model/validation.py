"""Semantic checks that types alone cannot express: names, quantities, references, ranges.

``validate(obj)`` returns every problem it finds, each with the field path and a hint.
Pure: no I/O, no clock.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable

from shoal.model.base import Object
from shoal.model.config import ConfigMap, Secret
from shoal.model.daemonset import DaemonSet, daemonset_errors, max_unavailable_errors
from shoal.model.errors import FieldError
from shoal.model.job import CronJob, Job, cronjob_errors, job_errors
from shoal.model.meta import ObjectMeta
from shoal.model.node import Node
from shoal.model.pod import Container, Pod, PodSpec, Probe
from shoal.model.quantity import QuantityError, parse_resource
from shoal.model.selector import SelectorError, from_label_selector
from shoal.model.service import Service
from shoal.model.workloads import Deployment

_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_CONFIG_KEY = re.compile(r"^[-._A-Za-z0-9]+$")
_ENV_NAME = re.compile(r"^[-._A-Za-z][-._A-Za-z0-9]*$")

POLICIES = ("FirstFit", "BestFit", "WorstFit", "RoundRobin", "Spread", "LowLatency", "EnergySaver")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


def _suggest_name(name: str) -> str:
    fixed = re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-.")
    return f'; did you mean "{fixed}"?' if fixed and fixed != name else ""


def check_name(path: str, name: str, *, label: bool = False) -> list[FieldError]:
    limit, pattern = (63, _LABEL) if label else (253, _SUBDOMAIN)
    if not name:
        return [FieldError(path, "required; give the object a name")]
    if len(name) > limit:
        return [FieldError(path, f'"{name[:20]}..." is longer than {limit} characters')]
    if not pattern.match(name):
        what = "DNS-1123 label" if label else "DNS-1123 name"
        return [FieldError(path, f'"{name}" is not a valid {what}: use lower-case letters, digits '
                                 f'and "-", starting and ending with a letter or digit{_suggest_name(name)}')]
    return []


def _check_labels(path: str, labels: dict[str, str]) -> list[FieldError]:
    errors = []
    for key, value in labels.items():
        name = key.rsplit("/", 1)[-1]
        prefix = key[: -len(name) - 1] if "/" in key else ""
        if not _LABEL_NAME.match(name) or len(name) > 63 or (prefix and not _SUBDOMAIN.match(prefix)):
            errors.append(FieldError(f"{path}.{key}", f'"{key}" is not a valid label key; use '
                                     'letters, digits, "-", "_", "." with an optional "prefix/"'))
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            errors.append(FieldError(f"{path}.{key}", f'"{value}" is not a valid label value: at most 63 '
                                     'letters, digits, "-", "_" or ".", starting and ending alphanumeric'))
    return errors


def check_meta(meta: ObjectMeta, path: str = "metadata") -> list[FieldError]:
    errors: list[FieldError] = []
    if meta.name or not meta.generate_name:
        errors += check_name(f"{path}.name", meta.name)
    if meta.namespace:
        errors += check_name(f"{path}.namespace", meta.namespace, label=True)
    errors += _check_labels(f"{path}.labels", meta.labels)
    return errors


def _check_quantities(path: str, values: dict[str, str | int | float]) -> list[FieldError]:
    errors = []
    for name, value in values.items():
        try:
            amount = parse_resource(name, value)
        except QuantityError as exc:
            errors.append(FieldError(f"{path}.{name}", str(exc)))
            continue
        if amount < 0:
            errors.append(FieldError(f"{path}.{name}", "must not be negative"))
    return errors


def _check_port(path: str, port: int) -> list[FieldError]:
    return [] if 1 <= port <= 65535 else [FieldError(path, f"{port} is not a port; use 1-65535")]


def _check_probe(path: str, probe: Probe | None) -> list[FieldError]:
    if probe is None:
        return []
    handlers = [h for h in (probe.http_get, probe.tcp_socket, probe.exec) if h is not None]
    if len(handlers) != 1:
        return [FieldError(path, "give exactly one of httpGet, tcpSocket or exec")]
    if probe.period_seconds < 1:
        return [FieldError(f"{path}.periodSeconds", "must be at least 1")]
    return []


def _check_container(path: str, c: Container, volumes: set[str]) -> list[FieldError]:
    errors = check_name(f"{path}.name", c.name, label=True)
    if not c.image.strip():
        errors.append(FieldError(f"{path}.image", "required; e.g. image: registry.local:5000/acme/app:1.0"))
    errors += _check_quantities(f"{path}.resources.requests", c.resources.requests)
    errors += _check_quantities(f"{path}.resources.limits", c.resources.limits)
    for name, limit in c.resources.limits.items():
        request = c.resources.requests.get(name)
        if request is None:
            continue
        try:
            if parse_resource(name, request) > parse_resource(name, limit):
                errors.append(FieldError(f"{path}.resources.requests.{name}",
                                         f"request {request} is more than the limit {limit}"))
        except QuantityError:
            pass  # reported above
    for i, port in enumerate(c.ports):
        errors += _check_port(f"{path}.ports[{i}].containerPort", port.container_port)
        if port.host_port:
            errors += _check_port(f"{path}.ports[{i}].hostPort", port.host_port)
    for i, env in enumerate(c.env):
        if not _ENV_NAME.match(env.name):
            errors.append(FieldError(f"{path}.env[{i}].name", f'"{env.name}" is not a valid variable name'))
    for name in ("readiness_probe", "liveness_probe", "startup_probe"):
        wire = re.sub(r"_(\w)", lambda m: m.group(1).upper(), name)
        errors += _check_probe(f"{path}.{wire}", getattr(c, name))
    for i, mount in enumerate(c.volume_mounts):
        if mount.name not in volumes:
            errors.append(FieldError(f"{path}.volumeMounts[{i}].name", f'no volume named "{mount.name}" in '
                                     f"spec.volumes{_did_you_mean(mount.name, volumes)}"))
        if not mount.mount_path.startswith("/"):
            errors.append(FieldError(f"{path}.volumeMounts[{i}].mountPath", "must be an absolute path"))
    return errors


def _did_you_mean(value: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.5)
    return f'; did you mean "{close[0]}"?' if close else ""


def check_pod_spec(spec: PodSpec, path: str = "spec") -> list[FieldError]:
    errors: list[FieldError] = []
    volumes: set[str] = set()
    for i, vol in enumerate(spec.volumes):
        errors += check_name(f"{path}.volumes[{i}].name", vol.name, label=True)
        if vol.name in volumes:
            errors.append(FieldError(f"{path}.volumes[{i}].name", f'duplicate volume "{vol.name}"'))
        volumes.add(vol.name)
        sources = [vol.empty_dir, vol.config_map, vol.secret, vol.host_path, vol.local_volume]
        if sum(s is not None for s in sources) != 1:
            errors.append(FieldError(f"{path}.volumes[{i}]", "give exactly one of emptyDir, configMap, "
                                     "secret, hostPath or localVolume"))
    if not spec.containers:
        errors.append(FieldError(f"{path}.containers", "at least one container is required"))
    seen: set[str] = set()
    for group in ("initContainers", "containers"):
        items = spec.init_containers if group == "initContainers" else spec.containers
        for i, container in enumerate(items):
            errors += _check_container(f"{path}.{group}[{i}]", container, volumes)
            if container.name in seen:
                errors.append(FieldError(f"{path}.{group}[{i}].name", f'duplicate container name "{container.name}"'))
            seen.add(container.name)
    if spec.scheduling_policy and spec.scheduling_policy not in POLICIES:
        errors.append(FieldError(f"{path}.schedulingPolicy", f'"{spec.scheduling_policy}" is not a policy; '
                                 f"use one of {', '.join(POLICIES)}{_did_you_mean(spec.scheduling_policy, POLICIES)}"))
    for i, tol in enumerate(spec.tolerations):
        if tol.operator not in ("Equal", "Exists"):
            errors.append(FieldError(f"{path}.tolerations[{i}].operator", 'use "Equal" or "Exists"'))
        if tol.effect and tol.effect not in TAINT_EFFECTS:
            errors.append(FieldError(f"{path}.tolerations[{i}].effect", f"use one of {', '.join(TAINT_EFFECTS)}"))
    if spec.node_name:
        errors += check_name(f"{path}.nodeName", spec.node_name)
    if spec.termination_grace_period_seconds < 0:
        errors.append(FieldError(f"{path}.terminationGracePeriodSeconds", "must not be negative"))
    return errors


def _validate_pod(pod: Pod) -> list[FieldError]:
    return check_pod_spec(pod.spec)


def _validate_deployment(deploy: Deployment) -> list[FieldError]:
    spec = deploy.spec
    errors = check_pod_spec(spec.template.spec, "spec.template.spec")
    errors += _check_labels("spec.template.metadata.labels", spec.template.metadata.labels)
    if spec.replicas < 0:
        errors.append(FieldError("spec.replicas", "must not be negative"))
    if spec.revision_history_limit < 0:
        errors.append(FieldError("spec.revisionHistoryLimit", "must not be negative"))
    rolling = spec.strategy.rolling_update
    if rolling is not None:
        errors += max_unavailable_errors(rolling.max_surge, "spec.strategy.rollingUpdate.maxSurge")
        errors += max_unavailable_errors(rolling.max_unavailable, "spec.strategy.rollingUpdate.maxUnavailable")
    if not spec.selector.match_labels and not spec.selector.match_expressions:
        errors.append(FieldError("spec.selector", "required; e.g. selector: {matchLabels: {app: web}}"))
    else:
        try:
            selector = from_label_selector(spec.selector)
        except SelectorError as exc:
            errors.append(FieldError("spec.selector", str(exc)))
        else:
            if not selector.matches(spec.template.metadata.labels):
                errors.append(FieldError("spec.template.metadata.labels", "must match spec.selector, or the "
                                         "Deployment would never see its own pods"))
    if spec.progress_deadline_seconds < 1:
        errors.append(FieldError("spec.progressDeadlineSeconds", "must be at least 1"))
    return errors


def _validate_service(svc: Service) -> list[FieldError]:
    errors: list[FieldError] = []
    for i, port in enumerate(svc.spec.ports):
        errors += _check_port(f"spec.ports[{i}].port", port.port)
        if port.node_port and not 30000 <= port.node_port <= 32767:
            errors.append(FieldError(f"spec.ports[{i}].nodePort", f"{port.node_port} is outside 30000-32767"))
    if svc.spec.session_affinity not in ("None", "ClientIP"):
        errors.append(FieldError("spec.sessionAffinity", 'use "None" or "ClientIP"'))
    return errors


def _validate_node(node: Node) -> list[FieldError]:
    errors = _check_quantities("status.capacity", node.status.capacity)
    errors += _check_quantities("status.allocatable", node.status.allocatable)
    for i, taint in enumerate(node.spec.taints):
        if taint.effect not in TAINT_EFFECTS:
            errors.append(FieldError(f"spec.taints[{i}].effect", f"use one of {', '.join(TAINT_EFFECTS)}"))
    return errors


def _validate_config(obj: ConfigMap | Secret) -> list[FieldError]:
    errors = []
    data = {**obj.data, **(obj.string_data if isinstance(obj, Secret) else {})}
    for key in data:
        if not _CONFIG_KEY.match(key):
            errors.append(FieldError(f"data.{key}", f'"{key}" is not a valid key; use letters, digits, "-", "_", "."'))
    return errors


def _validate_daemonset(ds: DaemonSet) -> list[FieldError]:
    return (check_pod_spec(ds.spec.template.spec, "spec.template.spec")
            + _check_labels("spec.template.metadata.labels", ds.spec.template.metadata.labels) + daemonset_errors(ds))


def _validate_job(job: Job) -> list[FieldError]:
    return check_pod_spec(job.spec.template.spec, "spec.template.spec") + job_errors(job)


def _validate_cronjob(cron: CronJob) -> list[FieldError]:
    return (check_pod_spec(cron.spec.job_template.spec.template.spec, "spec.jobTemplate.spec.template.spec")
            + cronjob_errors(cron))


_VALIDATORS: dict[type[Object], Callable[..., list[FieldError]]] = {
    Pod: _validate_pod,
    Deployment: _validate_deployment,
    DaemonSet: _validate_daemonset,
    Job: _validate_job,
    CronJob: _validate_cronjob,
    Service: _validate_service,
    Node: _validate_node,
    ConfigMap: _validate_config,
    Secret: _validate_config,
}


def validate(obj: Object) -> list[FieldError]:
    """Every semantic problem with ``obj``, each naming its field."""
    meta: ObjectMeta = obj.metadata  # type: ignore[attr-defined]
    errors = check_meta(meta)
    validator = _VALIDATORS.get(type(obj))
    if validator is not None:
        errors += validator(obj)
    return errors
