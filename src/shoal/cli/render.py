"""The columns ``shoal get`` shows for each kind, kubectl-style, computed from plain dict objects.

Pure: objects and the current time in, header and row strings out. It must not print or do I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from shoal.model import KindInfo

Obj = dict[str, Any]
Row = list[str]
NONE = "<none>"


def parse_time(value: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def human_duration(seconds: float) -> str:
    """kubectl's short durations: 45s, 5m30s, 150m, 5h30m, 36h, 4d5h, 120d, 3y."""
    s = max(int(seconds), 0)
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 730:
        return f"{d}d"
    return f"{d // 365}y"


def age(timestamp: str, now: datetime) -> str:
    when = parse_time(timestamp)
    return "<unknown>" if when is None else human_duration((now - when).total_seconds())


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _spec(obj: Obj) -> Obj:
    return obj.get("spec") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _created(obj: Obj, now: datetime) -> str:
    return age(str(_meta(obj).get("creationTimestamp", "")), now)


def pod_status(pod: Obj) -> str:
    """What STATUS shows: Terminating, a container's waiting/stopped reason, else the phase."""
    if _meta(pod).get("deletionTimestamp"):
        return "Terminating"
    status = _status(pod)
    for container in status.get("containerStatuses") or []:
        reason = container.get("reason")
        if reason and container.get("state") not in ("Running", None):
            return str(reason)
    return str(status.get("reason") or status.get("phase") or "Pending")


def _pod(pod: Obj, wide: bool, now: datetime) -> Row:
    statuses = _status(pod).get("containerStatuses") or []
    total = len(_spec(pod).get("containers") or []) or len(statuses)
    ready = sum(1 for c in statuses if c.get("ready"))
    restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
    row = [_meta(pod).get("name", ""), f"{ready}/{total}", pod_status(pod), str(restarts), _created(pod, now)]
    if wide:
        row += [_status(pod).get("podIP") or NONE, _spec(pod).get("nodeName") or NONE]
    return row


def _deployment(deploy: Obj, wide: bool, now: datetime) -> Row:
    spec, status = _spec(deploy), _status(deploy)
    row = [_meta(deploy).get("name", ""), f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
           str(status.get("updatedReplicas", 0)), str(status.get("availableReplicas", 0)),
           _created(deploy, now)]
    if wide:
        containers = ((spec.get("template") or {}).get("spec") or {}).get("containers") or []
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        row += [",".join(c.get("name", "") for c in containers),
                ",".join(c.get("image", "") for c in containers),
                ",".join(f"{k}={v}" for k, v in selector.items()) or NONE]
    return row


def node_status(node: Obj) -> str:
    phase = str(_status(node).get("phase") or "Pending")
    return f"{phase},SchedulingDisabled" if _spec(node).get("unschedulable") else phase


def _node(node: Obj, wide: bool, now: datetime) -> Row:
    labels = _meta(node).get("labels") or {}
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith(("node-role.shoal.io/",
                                                                       "node-role.kubernetes.io/")))
    info = _status(node).get("nodeInfo") or {}
    row = [_meta(node).get("name", ""), node_status(node), ",".join(roles) or NONE, _created(node, now),
           info.get("agentVersion") or NONE]
    if wide:
        row += [labels.get("shoal.io/zone") or NONE,
                labels.get("shoal.io/arch") or info.get("architecture") or NONE]
    return row


def service_ports(svc: Obj) -> str:
    ports = []
    for port in _spec(svc).get("ports") or []:
        node_port = f":{port['nodePort']}" if port.get("nodePort") else ""
        ports.append(f"{port.get('port')}{node_port}/{port.get('protocol') or 'TCP'}")
    return ",".join(ports) or NONE


def _service(svc: Obj, wide: bool, now: datetime) -> Row:
    spec = _spec(svc)
    row = [_meta(svc).get("name", ""), spec.get("type") or "ClusterIP", spec.get("clusterIP") or NONE,
           service_ports(svc), _created(svc, now)]
    if wide:
        row.append(",".join(f"{k}={v}" for k, v in (spec.get("selector") or {}).items()) or NONE)
    return row


def event_time(event: Obj) -> str:
    return str(event.get("lastTimestamp") or event.get("firstTimestamp")
               or _meta(event).get("creationTimestamp") or "")


def _event(event: Obj, wide: bool, now: datetime) -> Row:
    ref = event.get("involvedObject") or {}
    return [age(event_time(event), now), event.get("type") or "Normal", event.get("reason") or "",
            f"{str(ref.get('kind', '')).lower()}/{ref.get('name', '')}", event.get("message") or ""]


def _config(obj: Obj, wide: bool, now: datetime) -> Row:
    count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {}) + len(obj.get("stringData") or {})
    return [_meta(obj).get("name", ""), str(count), _created(obj, now)]


def _namespace(ns: Obj, wide: bool, now: datetime) -> Row:
    return [_meta(ns).get("name", ""), _status(ns).get("phase") or "Active", _created(ns, now)]


def _endpoints(ep: Obj, wide: bool, now: datetime) -> Row:
    """kubectl's ENDPOINTS column: ready ip:port pairs, the first three and a count of the rest."""
    pairs = [f"{a.get('ip', '')}:{p.get('port', '')}" for subset in ep.get("subsets") or []
             for a in subset.get("addresses") or [] for p in subset.get("ports") or [{}]]
    shown = ",".join(pairs[:3]) + (f" + {len(pairs) - 3} more..." if len(pairs) > 3 else "")
    return [_meta(ep).get("name", ""), shown or NONE, _created(ep, now)]


def _allocation(alloc: Obj, wide: bool, now: datetime) -> Row:
    return [_meta(alloc).get("name", ""), str(len(_spec(alloc).get("pods") or [])), _created(alloc, now)]


def _daemonset(ds: Obj, wide: bool, now: datetime) -> Row:
    status = _status(ds)
    return [_meta(ds).get("name", "")] + [str(status.get(k, 0)) for k in (
        "desiredNumberScheduled", "currentNumberScheduled", "numberReady", "updatedNumberScheduled",
        "numberAvailable")] + [_created(ds, now)]


def _job(job: Obj, wide: bool, now: datetime) -> Row:
    spec, status = _spec(job), _status(job)
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    state = "Complete" if conditions.get("Complete") == "True" else (
        "Failed" if conditions.get("Failed") == "True" else "Running")
    started, finished = parse_time(status.get("startTime", "")), parse_time(status.get("completionTime", ""))
    took = human_duration(((finished or now) - started).total_seconds()) if started else NONE
    return [_meta(job).get("name", ""), state, f"{status.get('succeeded', 0)}/{spec.get('completions', 1)}",
            took, _created(job, now)]


def _cronjob(cron: Obj, wide: bool, now: datetime) -> Row:
    spec, status = _spec(cron), _status(cron)
    last = status.get("lastScheduleTime", "")
    return [_meta(cron).get("name", ""), str(spec.get("schedule", "")), str(bool(spec.get("suspend", False))),
            str(len(status.get("active") or [])), age(last, now) if last else NONE, _created(cron, now)]


def _registration(reg: Obj, wide: bool, now: datetime) -> Row:
    spec = _spec(reg)
    address = f"{spec.get('address', '')}:{spec.get('port', '')}"
    return [_meta(reg).get("name", ""), str(spec.get("service", "")), address, f"{spec.get('ttlSeconds', 30)}s",
            _created(reg, now)]


def _revision(rev: Obj, wide: bool, now: datetime) -> Row:
    meta = _meta(rev)
    owners = [o.get("name", "") for o in meta.get("ownerReferences") or []]
    return [meta.get("name", ""), str(rev.get("revision", "")), ",".join(owners) or NONE, _created(rev, now)]


Columns = tuple[tuple[str, ...], tuple[str, ...], Callable[[Obj, bool, datetime], Row]]

COLUMNS: dict[str, Columns] = {
    "Pod": (("NAME", "READY", "STATUS", "RESTARTS", "AGE"), ("IP", "NODE"), _pod),
    "Deployment": (("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"), ("CONTAINERS", "IMAGES", "SELECTOR"),
                   _deployment),
    "Node": (("NAME", "STATUS", "ROLES", "AGE", "VERSION"), ("ZONE", "ARCH"), _node),
    "Service": (("NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "AGE"), ("SELECTOR",), _service),
    "Event": (("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"), (), _event),
    "ConfigMap": (("NAME", "DATA", "AGE"), (), _config),
    "Secret": (("NAME", "DATA", "AGE"), (), _config),
    "Namespace": (("NAME", "STATUS", "AGE"), (), _namespace),
    "Endpoints": (("NAME", "ENDPOINTS", "AGE"), (), _endpoints),
    "NodeAllocation": (("NAME", "PODS", "AGE"), (), _allocation),
    "DaemonSet": (("NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"), (), _daemonset),
    "Job": (("NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"), (), _job),
    "CronJob": (("NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"), (), _cronjob),
    "EndpointRegistration": (("NAME", "SERVICE", "ADDRESS", "TTL", "AGE"), (), _registration),
    "DeploymentRevision": (("NAME", "REVISION", "DEPLOYMENT", "AGE"), (), _revision),
}


def _generic(obj: Obj, wide: bool, now: datetime) -> Row:
    return [_meta(obj).get("name", ""), _created(obj, now)]


def headers(info: KindInfo, *, wide: bool = False, all_namespaces: bool = False) -> list[str]:
    base, extra, _ = COLUMNS.get(info.kind, (("NAME", "AGE"), (), _generic))
    prefix = ["NAMESPACE"] if all_namespaces and info.namespaced else []
    return [*prefix, *base, *(extra if wide else ())]


def row(info: KindInfo, obj: Obj, now: datetime, *, wide: bool = False, all_namespaces: bool = False) -> Row:
    _, _, build = COLUMNS.get(info.kind, (("NAME", "AGE"), (), _generic))
    prefix = [str(_meta(obj).get("namespace", ""))] if all_namespaces and info.namespaced else []
    return [*prefix, *(str(cell) for cell in build(obj, wide, now))]


def rows(info: KindInfo, items: Sequence[Obj], now: datetime | None = None, *, wide: bool = False,
         all_namespaces: bool = False) -> list[Row]:
    """One row per object; events oldest first, everything else by namespace and name."""
    moment = now or datetime.now(UTC)
    if info.kind == "Event":
        ordered = sorted(items, key=lambda e: parse_time(event_time(e)) or datetime.min.replace(tzinfo=UTC))
    else:
        ordered = sorted(items, key=lambda o: (_meta(o).get("namespace", ""), _meta(o).get("name", "")))
    return [row(info, obj, moment, wide=wide, all_namespaces=all_namespaces) for obj in ordered]
