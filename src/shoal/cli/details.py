"""The text ``shoal describe`` prints: an object's key facts, conditions, containers and recent
events, kubectl-style. For a pending pod it surfaces why it is unschedulable; for a scheduled pod
the scheduler's scores (annotation ``shoal.io/scheduling-scores``).

Pure: dicts and the current time in, text out. It must not print or do I/O.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from shoal.cli.common import render_table
from shoal.cli.render import NONE, age, event_time, node_status, pod_status, service_ports
from shoal.model.pod import ANNOTATION_SCHEDULING_SCORES

Obj = dict[str, Any]
SCORES_ANNOTATION = ANNOTATION_SCHEDULING_SCORES
_W = 18


def _line(key: str, value: Any) -> str:
    return f"{key + ':':<{_W}}{value}"


def _mapping(key: str, values: dict[str, Any] | None) -> list[str]:
    items = [f"{k}={v}" for k, v in (values or {}).items()]
    if not items:
        return [_line(key, NONE)]
    return [_line(key, items[0]), *(" " * _W + item for item in items[1:])]


def _indent(block: str, by: int = 2) -> list[str]:
    return [" " * by + line for line in block.splitlines()]


def _conditions(conditions: Sequence[Obj]) -> list[str]:
    if not conditions:
        return []
    rows = [[c.get("type", ""), c.get("status", ""), c.get("reason", ""), c.get("message", "")]
            for c in conditions]
    return ["Conditions:", *_indent(render_table(["TYPE", "STATUS", "REASON", "MESSAGE"], rows))]


def _resources(container: Obj) -> list[str]:
    out = []
    for part in ("requests", "limits"):
        values = (container.get("resources") or {}).get(part) or {}
        if values:
            out.append(f"    {part.capitalize() + ':':<11}" + ", ".join(f"{k}={v}" for k, v in values.items()))
    return out


def _containers(spec: Obj, statuses: Sequence[Obj]) -> list[str]:
    by_name = {s.get("name"): s for s in statuses}
    lines = ["Containers:"]
    for container in spec.get("containers") or []:
        status = by_name.get(container.get("name"), {})
        lines.append(f"  {container.get('name', '')}:")
        lines.append(f"    Image:     {container.get('image', '')}")
        ports = ", ".join(f"{p.get('containerPort')}/{p.get('protocol') or 'TCP'}"
                          for p in container.get("ports") or [])
        if ports:
            lines.append(f"    Ports:     {ports}")
        if status:
            state = status.get("state", "Waiting")
            reason = f" ({status['reason']})" if status.get("reason") else ""
            exit_code = f", exit code {status['exitCode']}" if status.get("exitCode") is not None else ""
            lines.append(f"    State:     {state}{reason}{exit_code}")
            lines.append(f"    Ready:     {bool(status.get('ready'))}")
            lines.append(f"    Restarts:  {status.get('restartCount', 0)}")
        lines += _resources(container)
    return lines if len(lines) > 1 else []


def _scores(annotation: str) -> list[str]:
    try:
        scores = json.loads(annotation)
    except ValueError:
        return ["Scheduling scores:", f"  {annotation}"]
    if isinstance(scores, dict):
        ranked = sorted(scores.items(), key=lambda kv: -kv[1] if isinstance(kv[1], int | float) else 0)
        rows = [[str(plugin), score if isinstance(score, str) else json.dumps(score)]
                for plugin, score in ranked]
        return ["Scheduling scores (why this node won):", *_indent(render_table(["PLUGIN", "SCORE"], rows))]
    return ["Scheduling scores:", f"  {json.dumps(scores)}"]


def _pod(pod: Obj) -> list[str]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    lines = [_line("Node", spec.get("nodeName") or NONE), _line("Status", pod_status(pod)),
             _line("IP", status.get("podIP") or NONE), _line("Runtime", spec.get("runtime") or "oci")]
    if status.get("qosClass"):
        lines.append(_line("QoS Class", status["qosClass"]))
    if spec.get("schedulingPolicy"):
        lines.append(_line("Policy", spec["schedulingPolicy"]))
    if spec.get("nodeSelector"):
        lines += _mapping("Node-Selectors", spec["nodeSelector"])
    if status.get("message"):
        lines.append(_line("Message", status["message"]))
    conditions = status.get("conditions") or []
    unschedulable = [c for c in conditions
                     if c.get("reason") == "Unschedulable" and c.get("status") != "True"]
    if unschedulable and not spec.get("nodeName"):
        lines.append(_line("Unschedulable", unschedulable[0].get("message") or "no node fits"))
    lines += _conditions(conditions)
    lines += _containers(spec, status.get("containerStatuses") or [])
    annotation = ((pod.get("metadata") or {}).get("annotations") or {}).get(SCORES_ANNOTATION)
    if annotation and spec.get("nodeName"):
        lines += _scores(annotation)
    return lines


def _deployment(deploy: Obj) -> list[str]:
    spec, status = deploy.get("spec") or {}, deploy.get("status") or {}
    strategy = spec.get("strategy") or {}
    selector = (spec.get("selector") or {}).get("matchLabels") or {}
    lines = [
        *_mapping("Selector", selector),
        _line("Replicas", f"{spec.get('replicas', 1)} desired | {status.get('updatedReplicas', 0)} updated"
                          f" | {status.get('replicas', 0)} total | {status.get('availableReplicas', 0)} "
                          f"available | {status.get('unavailableReplicas', 0)} unavailable"),
        _line("Strategy", strategy.get("type") or "RollingUpdate"),
    ]
    template = spec.get("template") or {}
    lines += ["Pod Template:", *_indent("\n".join(
        _mapping("Labels", (template.get("metadata") or {}).get("labels"))
        + _containers(template.get("spec") or {}, [])))]
    return lines + _conditions(status.get("conditions") or [])


def _node(node: Obj) -> list[str]:
    spec, status = node.get("spec") or {}, node.get("status") or {}
    lines = [_line("Status", node_status(node)), _line("Unschedulable", bool(spec.get("unschedulable")))]
    taints = [f"{t.get('key')}={t.get('value', '')}:{t.get('effect', 'NoSchedule')}"
              for t in spec.get("taints") or []]
    lines.append(_line("Taints", ", ".join(taints) or NONE))
    addresses = ", ".join(f"{a.get('type')}={a.get('address')}" for a in status.get("addresses") or [])
    lines.append(_line("Addresses", addresses or NONE))
    lines.append(_line("Runtimes", ", ".join(status.get("runtimes") or []) or NONE))
    lines += _mapping("Capacity", status.get("capacity"))
    lines += _mapping("Allocatable", status.get("allocatable"))
    if status.get("lastHeartbeatTime"):
        lines.append(_line("Last Heartbeat", status["lastHeartbeatTime"]))
    return lines + _conditions(status.get("conditions") or [])


def _service(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    return [_line("Type", spec.get("type") or "ClusterIP"), _line("IP", spec.get("clusterIP") or NONE),
            *_mapping("Selector", spec.get("selector")), _line("Port(s)", service_ports(svc)),
            _line("Session Affinity", spec.get("sessionAffinity") or "None")]


def _data(obj: Obj) -> list[str]:
    data = {**(obj.get("data") or {}), **(obj.get("stringData") or {})}
    secret = obj.get("kind") == "Secret"
    lines = ["Data:"] if data else [_line("Data", NONE)]
    for key, value in data.items():
        size = _secret_size(str(value), key in (obj.get("stringData") or {}))
        lines.append(f"  {key}: {size} bytes" if secret else f"  {key}: {value}")
    return lines


def _secret_size(value: str, plain: bool) -> int:
    """The size of a Secret value as its user sees it (decoded), never the value itself."""
    if plain:
        return len(value.encode())
    try:
        return len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        return len(value.encode())


def _event(event: Obj) -> list[str]:
    ref = event.get("involvedObject") or {}
    return [_line("Object", f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}"),
            _line("Type", event.get("type", "Normal")), _line("Reason", event.get("reason", "")),
            _line("Message", event.get("message", "")), _line("Count", event.get("count", 1)),
            _line("Source", event.get("source") or NONE)]


_BODIES = {"Pod": _pod, "Deployment": _deployment, "Node": _node, "Service": _service,
           "ConfigMap": _data, "Secret": _data, "Event": _event}


def events_table(events: Sequence[Obj], now: datetime) -> list[str]:
    if not events:
        return ["Events:           <none>"]
    rows = [[e.get("type", "Normal"), e.get("reason", ""), age(event_time(e), now),
             e.get("source") or "shoal", e.get("message", "")]
            for e in sorted(events, key=event_time)]
    return ["Events:", *_indent(render_table(["TYPE", "REASON", "AGE", "FROM", "MESSAGE"], rows))]


def describe(obj: Obj, events: Sequence[Obj], now: datetime) -> str:
    """The full ``describe`` text for one object and the events about it."""
    meta = obj.get("metadata") or {}
    lines = [_line("Name", meta.get("name", ""))]
    if meta.get("namespace"):
        lines.append(_line("Namespace", meta["namespace"]))
    lines.append(_line("Kind", obj.get("kind", "")))
    lines += _mapping("Labels", meta.get("labels"))
    lines += _mapping("Annotations", {k: v for k, v in (meta.get("annotations") or {}).items()
                                      if k != SCORES_ANNOTATION})
    created = meta.get("creationTimestamp", "")
    lines.append(_line("Created", f"{created} ({age(created, now)} ago)" if created else NONE))
    owners = ", ".join(f"{o.get('kind')}/{o.get('name')}" for o in meta.get("ownerReferences") or [])
    if owners:
        lines.append(_line("Controlled By", owners))
    body = _BODIES.get(str(obj.get("kind", "")))
    if body is not None:
        lines += body(obj)
    if obj.get("kind") != "Event":
        lines += events_table(events, now)
    return "\n".join(lines)
