"""A pod's init containers: run in order, each to completion, before any app container starts.

``init_step`` is one level-based pass over ``spec.initContainers``: the first one not completed
(exit 0) is created and started, or restarted with the same crash-loop backoff as app containers
(restartPolicy Always counts as OnFailure for init containers, as in Kubernetes; with Never a
failed init container fails the pod), and nothing after it runs. It returns the init containers'
views, whether all completed, when to look again and which pids to wake on; ``run_init`` adds the
pod-dir marker that keeps a completed pod initialized across agent restarts. Creating a container
goes through ``InitSteps`` (the worker). It must not touch app containers or publish status.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from shoal.agent.podspec import container_id
from shoal.agent.restarts import Decision, RestartTrack, decide, restarted
from shoal.agent.status import ContainerView, init_done
from shoal.model.pod import ContainerState, Pod, RestartPolicy
from shoal.runtime.protocol import ContainerInfo, ContainerNotFound, Driver

__all__ = ["INITIALIZED_MARKER", "InitProgress", "InitSteps", "init_policy", "init_step", "run_init"]

log = logging.getLogger("shoal.agent.pods")
_NOT_YET = "PodInitializing"  # an init container whose turn has not come
INITIALIZED_MARKER = "initialized"  # in the pod dir: every init container completed; they never run again


@dataclass(frozen=True, slots=True)
class InitSteps:
    """What ``init_step`` needs from the pod's worker."""

    inspect: Callable[[str], Awaitable[ContainerInfo | None]]
    create: Callable[[Pod, int], Awaitable[ContainerInfo | None]]  # create + start init container i
    driver: Driver
    tracks: Mapping[str, RestartTrack]
    set_track: Callable[[str, RestartTrack], None]
    waiting: Mapping[str, tuple[str, str]]  # why a container is not created yet

    def track(self, name: str) -> RestartTrack:
        return self.tracks.get(name, RestartTrack())


@dataclass(slots=True)
class InitProgress:
    views: list[ContainerView] = field(default_factory=list)
    done: bool = True
    wake: dt.datetime | None = None
    pids: list[int] = field(default_factory=list)


def init_policy(policy: RestartPolicy) -> RestartPolicy:
    """Init containers are restarted on failure unless the pod never restarts anything."""
    return RestartPolicy.NEVER if policy is RestartPolicy.NEVER else RestartPolicy.ON_FAILURE


async def _advance(pod: Pod, index: int, cid: str, steps: InitSteps, now: dt.datetime,
                   progress: InitProgress) -> ContainerInfo | None:
    name = pod.spec.init_containers[index].name
    info = await steps.inspect(cid)
    track = steps.track(name)
    if info is None and not track.finished:
        info = await steps.create(pod, index)
    elif info is not None and info.state is ContainerState.CREATED:
        info = await steps.driver.start(cid)
    if info is None:
        return None
    decision, new_track = decide(info, track, init_policy(pod.spec.restart_policy), now)
    if decision is Decision.RESTART:
        new_track = restarted(new_track)
        steps.set_track(name, new_track)
        with contextlib.suppress(ContainerNotFound):
            await steps.driver.remove(cid)
        info = await steps.create(pod, index)
        if info is None or info.state is ContainerState.STOPPED:
            progress.wake = now  # look again at once: it may need a backoff already
    elif decision is Decision.WAIT and new_track.next_start is not None:
        progress.wake = new_track.next_start
    steps.set_track(name, new_track)
    return info


async def init_step(pod: Pod, uid: str, steps: InitSteps, now: dt.datetime) -> InitProgress:
    """Move the pod's init containers one step; only the first not-completed one acts."""
    progress = InitProgress()
    for index, c in enumerate(pod.spec.init_containers):
        cid = container_id(uid, c.name)
        if progress.done:
            info = await _advance(pod, index, cid, steps, now, progress)
        else:
            info = await steps.inspect(cid)
        reason, message = steps.waiting.get(c.name, ("", "")) if progress.done else (_NOT_YET, "")
        view = ContainerView(c.name, c.image, info, steps.track(c.name), *(("", "") if info else (reason, message)),
                             ready=False)
        progress.views.append(view)
        if info is not None and info.state is ContainerState.RUNNING and info.pid > 0:
            progress.pids.append(info.pid)
        if not init_done(view):
            progress.done = False
    return progress


async def run_init(pod: Pod, uid: str, pod_dir: Path, steps: InitSteps, now: dt.datetime,
                   paused: bool) -> InitProgress:
    """Advance the init containers until all completed (afterwards: only their views, for status).
    A paused pod starts nothing."""
    if not pod.spec.init_containers:
        return InitProgress()
    marker = pod_dir / INITIALIZED_MARKER
    if marker.exists() or paused:
        views = []
        for c in pod.spec.init_containers:
            info = await steps.inspect(container_id(uid, c.name))
            if info is not None:
                views.append(ContainerView(c.name, c.image, info, steps.track(c.name)))
        return InitProgress(views=views, done=marker.exists())
    progress = await init_step(pod, uid, steps, now)
    if progress.done:
        log.info("pod %s/%s: %d init container(s) completed", pod.metadata.namespace or "default",
                 pod.metadata.name, len(progress.views))
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("", encoding="utf-8")
    return progress
