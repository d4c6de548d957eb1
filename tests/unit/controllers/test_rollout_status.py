"""What `shoal rollout` reads out of a Deployment (status verdicts, undo targets, history rows) and
how hollow nodes simulate broken pods for rollout tests. Pure functions on wire-format dicts."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.cli.common import CliError
from shoal.cli.rollout import deployment_name, history_rows, rollout_state, undo_target
from shoal.sim.nodes import failure_of, running_status


def deploy(*, generation: int = 2, observed: int = 2, updated: int = 3, ready: int = 3, replicas: int = 3,
           available: int = 3, conditions: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "web", "generation": generation}, "spec": {"replicas": 3},
            "status": {"observedGeneration": observed, "updatedReplicas": updated, "updatedReadyReplicas": ready,
                       "replicas": replicas, "availableReplicas": available, "conditions": conditions or []}}


def test_complete_rollout_is_done() -> None:
    state = rollout_state(deploy())
    assert state.done and not state.failed and state.message == 'deployment "web" successfully rolled out'


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"observed": 1}, "waiting for the controller to see the new spec"),
    ({"updated": 1, "ready": 1}, "1 of 3 new pods updated"),
    ({"replicas": 4}, "1 old pods pending termination"),
    ({"available": 2, "ready": 2}, "2 of 3 updated pods available"),
])
def test_rollout_in_progress(kwargs: dict[str, int], message: str) -> None:
    state = rollout_state(deploy(**kwargs))
    assert not state.done and not state.failed and state.message == message


def test_deadline_exceeded_and_rolled_back_are_failures() -> None:
    exceeded = rollout_state(deploy(updated=1, conditions=[{"type": "Progressing", "status": "False",
                                                            "reason": "ProgressDeadlineExceeded",
                                                            "message": "revision 3 made no progress"}]))
    assert exceeded.failed and "exceeded its progress deadline: revision 3 made no progress" in exceeded.message
    rolled = rollout_state(deploy(conditions=[{"type": "RolledBack", "status": "True", "message": "why"}]))
    assert rolled.failed and not rolled.done and rolled.message == 'deployment "web" was rolled back: why'


def test_an_unobserved_change_is_not_judged_by_the_old_conditions() -> None:
    state = rollout_state(deploy(observed=1, conditions=[{"type": "RolledBack", "status": "True"}]))
    assert not state.failed and not state.done


REVISIONS = [{"revision": 1, "template": {"spec": {"containers": [{"image": "web:1"}]}}},
             {"revision": 3, "template": {"spec": {"containers": [{"image": "web:3"}]}}, "changeCause": "v3"},
             {"revision": 4, "template": {"spec": {"containers": [{"image": "web:2"}, {"image": "side:1"}]}}}]


def test_undo_goes_to_the_previous_revision_or_the_one_asked_for() -> None:
    assert undo_target(REVISIONS, "4", 0)["revision"] == 3
    assert undo_target(REVISIONS, "4", 1)["revision"] == 1
    with pytest.raises(CliError, match=r"revision 2 not found; known revisions: 1, 3, 4"):
        undo_target(REVISIONS, "4", 2)
    with pytest.raises(CliError, match="no previous revision"):
        undo_target(REVISIONS[:1], "1", 0)
    with pytest.raises(CliError, match="no rollout history"):
        undo_target([], "", 0)


def test_history_rows_mark_the_current_revision() -> None:
    assert history_rows(REVISIONS, "4") == [["1", "", "web:1", "<none>"], ["3", "", "web:3", "v3"],
                                            ["4", "*", "web:2,side:1", "<none>"]]


def test_deployment_refs() -> None:
    assert deployment_name("web") == deployment_name("deploy/web") == deployment_name("deployment/web") == "web"
    with pytest.raises(CliError, match="only Deployments have rollouts"):
        deployment_name("pod/web")


def pod(image: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "p", "labels": labels or {}}, "spec": {"nodeName": "sim-0000",
                                                                       "containers": [{"name": "c", "image": image}]},
            "status": {"phase": "Pending"}}


def test_hollow_nodes_report_marked_pods_broken_and_others_ready() -> None:
    assert failure_of(pod("web:1")) == ""
    assert failure_of(pod("registry.local/web:crash-2")) == "CrashLoopBackOff"
    assert failure_of(pod("web:pullfail")) == "ImagePullBackOff"
    assert failure_of(pod("web:1", {"shoal.io/sim-fail": "Unready"})) == "Unready"
    ok = running_status(pod("web:1"), 1)["status"]
    assert ok["phase"] == "Running" and {"type": "Ready", "status": "True"}.items() <= ok["conditions"][0].items()
    crash = running_status(pod("web:crash"), 1)["status"]
    assert crash["phase"] == "Running" and crash["containerStatuses"][0]["reason"] == "CrashLoopBackOff"
    assert all(c["status"] == "False" for c in crash["conditions"])
    pull = running_status(pod("web:pullfail"), 1)["status"]
    assert pull["phase"] == "Pending" and pull["containerStatuses"][0]["state"] == "Waiting"
