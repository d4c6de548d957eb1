"""Pod status as the agent reports it, built from the driver's view of each container.

Pure: ``pod_status`` turns ``ContainerView``s (driver info, restart track, why a container is
still waiting) into the ``status`` dict of a Pod (phase, containerStatuses, conditions Ready,
ContainersReady, Initialized and Paused, hostIP, startTime; phase Failed with a reason for an
evicted pod; initContainerStatuses and Initialized=False while init containers have not all
completed, ``init_reason`` the ``Init:N/M`` word for them), keeping conditions other parts of
shoal set (Scheduled) and transition times of conditions that did not change (the QoS class is
``shoal.model.qos``). It must not do I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shoal.agent.restarts import RestartTrack
from shoal.model.pod import ANNOTATION_PAUSED, ContainerState, PodPhase, RestartPolicy
from shoal.runtime.protocol import ContainerInfo

__all__ = ["CRASH_LOOP", "PAUSED", "ContainerView", "container_status", "init_done", "init_reason", "pod_phase",
           "pod_status", "timestamp"]

CRASH_LOOP = "CrashLoopBackOff"
CREATING = "ContainerCreating"
PAUSED = "Paused"  # the pod condition type, and the reason on its frozen containers
_OWN_CONDITIONS = ("Initialized", "ContainersReady", "Ready", PAUSED)


_LIVE = (ContainerState.RUNNING, ContainerState.PAUSED)


def timestamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, slots=True)
class ContainerView:
    name: str
    image: str
    info: ContainerInfo | None  # None: not created yet
    track: RestartTrack = field(default_factory=RestartTrack)
    waiting_reason: str = ""  # why it is not created yet (ContainerCreating, ErrImagePull, ...), or a
    waiting_message: str = ""  # probe's verdict on a created one (Unhealthy: "Killing: Liveness probe ...")
    ready: bool = True  # probes say it may take traffic (startup passed, readiness passing)


def container_status(view: ContainerView) -> dict[str, Any]:
    out: dict[str, Any] = {"name": view.name, "image": view.image, "restartCount": view.track.restart_count}
    info = view.info
    if info is None:
        out.update(state=ContainerState.WAITING.value, reason=view.waiting_reason or CREATING)
        if view.waiting_message:
            out["message"] = view.waiting_message
        return out
    out["containerId"] = info.id
    if info.started_at:
        out["startedAt"] = timestamp(info.started_at)
    if info.state is ContainerState.STOPPED:
        if info.finished_at:
            out["finishedAt"] = timestamp(info.finished_at)
        if info.exit_code is not None:
            out["exitCode"] = info.exit_code
        if view.track.next_start is not None and not view.track.finished:
            out.update(state=ContainerState.WAITING.value, reason=CRASH_LOOP,
                       message=f"back-off {view.track.backoff:g}s restarting failed container {view.name}; "
                               f"next retry at {timestamp(view.track.next_start)}"
                               + (f" (last exit: {info.reason.value})" if info.reason else "")
                               + (f"; {view.waiting_message}" if view.waiting_message else ""))
            return out
        out["state"] = ContainerState.STOPPED.value
        if info.reason:
            out["reason"] = info.reason.value
        return out
    out["state"] = info.state.value
    out["ready"] = info.state is ContainerState.RUNNING and view.ready
    if view.waiting_reason:
        out["reason"] = view.waiting_reason
        out["message"] = view.waiting_message
    return out


def init_done(view: ContainerView) -> bool:
    """An init container that ran to completion (exit 0)."""
    info = view.info
    return info is not None and info.state is ContainerState.STOPPED and info.exit_code == 0


def init_reason(views: Sequence[ContainerView]) -> str:
    """What a pod still initializing shows: ``Init:N/M`` (N completed of M), or ``Init:<reason>`` for
    the init container that holds it up (CrashLoopBackOff, Error, ErrImagePull, ...)."""
    for i, view in enumerate(views):
        if init_done(view):
            continue
        info = view.info
        if info is None:
            reason = view.waiting_reason
            return f"Init:{reason}" if reason and reason != CREATING else f"Init:{i}/{len(views)}"
        if info.state is ContainerState.STOPPED:
            crash_looping = view.track.next_start is not None and not view.track.finished
            return f"Init:{CRASH_LOOP}" if crash_looping else "Init:Error"
        return f"Init:{i}/{len(views)}"
    return f"Init:{len(views)}/{len(views)}"


def pod_phase(views: Sequence[ContainerView], policy: RestartPolicy) -> PodPhase:
    if not views or any(v.info is None for v in views):
        return PodPhase.PENDING
    infos = [v.info for v in views if v.info is not None]
    if all(i.state is ContainerState.STOPPED for i in infos) and all(v.track.finished for v in views):
        return PodPhase.SUCCEEDED if all(i.exit_code == 0 for i in infos) else PodPhase.FAILED
    if any(i.state in _LIVE for i in infos) or any(
            i.state is ContainerState.STOPPED and not v.track.finished for v, i in zip(views, infos, strict=True)):
        return PodPhase.RUNNING
    return PodPhase.PENDING


def _condition(ctype: str, ok: bool, previous: dict[str, dict[str, Any]], now: str, reason: str) -> dict[str, Any]:
    status = "True" if ok else "False"
    old = previous.get(ctype)
    since = old.get("lastTransitionTime", now) if old and old.get("status") == status else now
    out: dict[str, Any] = {"type": ctype, "status": status, "lastTransitionTime": since}
    if not ok and reason:
        out["reason"] = reason
    return out


def _paused_condition(paused: bool, old: dict[str, dict[str, Any]], stamp: str) -> list[dict[str, Any]]:
    """Paused=True while the pod is frozen; Paused=False once it was and no longer is; else nothing."""
    if not paused:
        return [_condition(PAUSED, False, old, stamp, "Resumed")] if PAUSED in old else []
    out = _condition(PAUSED, True, old, stamp, "")
    out.update(reason=PAUSED, message=f'annotation {ANNOTATION_PAUSED}="true": the containers are frozen; '
                                      f"`shoal unpause` resumes them")
    return [out]


def pod_status(views: Sequence[ContainerView], policy: RestartPolicy, *, host_ip: str, start_time: str,
               previous: dict[str, Any], now: dt.datetime, paused: bool = False,
               failure: tuple[str, str] | None = None, init_views: Sequence[ContainerView] = (),
               initialized: bool = True) -> dict[str, Any]:
    """The pod's new ``status``; ``previous`` is its current status (conditions others own are kept).
    ``failure`` (reason, message) makes the pod Failed whatever its containers say (Evicted).
    ``init_views`` are the init containers; until ``initialized`` the pod is Pending (Failed when
    one failed for good)."""
    stamp = timestamp(now)
    statuses = [container_status(v) for v in views]
    init_failed = not initialized and any(
        v.info is not None and v.info.state is ContainerState.STOPPED and not init_done(v) and v.track.finished
        for v in init_views)
    if not failure and init_failed:
        failure = ("Init:Error", "an init container failed and restartPolicy is Never")
    phase = PodPhase.FAILED if failure else pod_phase(views, policy) if initialized else PodPhase.PENDING
    all_ready = bool(statuses) and all(s.get("ready") for s in statuses)
    old = {c.get("type", ""): c for c in previous.get("conditions") or [] if isinstance(c, dict)}
    not_ready = [s["name"] for s in statuses if not s.get("ready")]
    reason = "ContainersNotReady" if not_ready else ""
    if phase in (PodPhase.SUCCEEDED, PodPhase.FAILED):
        reason = failure[0] if failure else "PodCompleted"
    conditions = [c for t, c in old.items() if t not in _OWN_CONDITIONS]
    conditions += [_condition("Initialized", initialized, old, stamp, "ContainersNotInitialized"),
                   _condition("ContainersReady", all_ready, old, stamp, reason),
                   _condition("Ready", all_ready, old, stamp, reason),
                   *_paused_condition(paused and not failure, old, stamp)]
    status: dict[str, Any] = {key: value for key, value in previous.items()
                              if key in ("podIP", "qosClass")}
    status.update(phase=phase.value, hostIP=host_ip, conditions=conditions, containerStatuses=statuses)
    if init_views:
        status["initContainerStatuses"] = [container_status(v) for v in init_views]
    if start_time:
        status["startTime"] = start_time
    if failure:
        status.update(reason=failure[0], message=failure[1])
    elif paused:
        status.update(reason=PAUSED, message="the pod's containers are frozen")
    elif not initialized:
        pending = [v.name for v in init_views if not init_done(v)]
        status["message"] = f"{init_reason(init_views)}: init containers not completed: {', '.join(pending)}"
    elif not_ready and phase is PodPhase.RUNNING:
        status["message"] = f"containers not ready: {', '.join(not_ready)}"
    return status
