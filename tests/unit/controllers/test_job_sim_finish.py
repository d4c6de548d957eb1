"""Hollow-node job pods: how ``shoal.sim.jobs`` ends a run-to-completion pod."""

from __future__ import annotations

from typing import Any

from shoal.sim.jobs import ANNOTATION_EXIT_CODE, ANNOTATION_RUN_SECONDS, ends, finished_status, run_seconds

NOW = "2026-11-23T08:00:00Z"


def running(policy: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "p", "uid": "u", "annotations": annotations or {}},
            "spec": {"nodeName": "sim-0000", "restartPolicy": policy, "containers": [{"name": "c", "image": "i"}]},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                       "containerStatuses": [{"name": "c", "state": "Running", "ready": True, "restartCount": 0}]}}


def test_only_run_to_completion_pods_end() -> None:
    assert ends(running("Never")) and ends(running("OnFailure"))
    assert not ends(running("Always"))


def test_exit_zero_succeeds_and_marks_the_pod_not_ready() -> None:
    done = finished_status(running("Never"), NOW)["status"]
    assert done["phase"] == "Succeeded"
    assert done["containerStatuses"][0] | {} == {"name": "c", "state": "Stopped", "ready": False, "restartCount": 0,
                                                 "exitCode": 0, "finishedAt": NOW, "reason": "Completed"}
    assert done["conditions"][0]["status"] == "False"


def test_nonzero_exit_fails_never_pods_and_restarts_onfailure_pods() -> None:
    failing = {ANNOTATION_EXIT_CODE: "3"}
    assert finished_status(running("Never", failing), NOW)["status"]["phase"] == "Failed"
    restarted = finished_status(running("OnFailure", failing), NOW)["status"]
    assert restarted["phase"] == "Running" and restarted["containerStatuses"][0]["restartCount"] == 1


def test_run_time_comes_from_the_annotation() -> None:
    assert run_seconds(running("Never", {ANNOTATION_RUN_SECONDS: "2.5"})) == 2.5
    assert run_seconds(running("Never", {ANNOTATION_RUN_SECONDS: "soon"})) == 1.0
    assert run_seconds(running("Never")) == 1.0
