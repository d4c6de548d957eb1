"""Server-side apply merges: what a manager set stays set; a re-apply changes only what changed."""

from __future__ import annotations

from typing import Any

from shoal.api.apply import merge_apply, merge_patch, record_update, same_content

NOW = "2026-11-23T00:00:00Z"


def _deploy(replicas: int = 3, image: str = "web:1", **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"replicas": replicas, "template": {"spec": {"containers": [{"name": "w", "image": image}]}}}
    spec.update(extra)
    return {"apiVersion": "shoal/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": spec}


def test_first_apply_creates_the_config() -> None:
    result = merge_apply(None, _deploy(), "cli", NOW)
    assert result["spec"]["replicas"] == 3
    [entry] = result["metadata"]["managedFields"]
    assert entry["manager"] == "cli" and ["spec", "replicas"] in entry["owned"]


def test_reapply_keeps_a_scale_made_since() -> None:
    live = merge_apply(None, _deploy(), "cli", NOW)
    live["spec"]["replicas"] = 7
    live = record_update(live, "scaler", {"spec": {"replicas": 7}}, NOW)
    again = merge_apply(live, _deploy(), "cli", NOW)
    assert again["spec"]["replicas"] == 7
    assert same_content(again, live)


def test_changing_the_field_in_the_manifest_takes_it_back() -> None:
    live = merge_apply(None, _deploy(), "cli", NOW)
    live["spec"]["replicas"] = 7
    live = record_update(live, "scaler", {"spec": {"replicas": 7}}, NOW)
    result = merge_apply(live, _deploy(replicas=5), "cli", NOW)
    assert result["spec"]["replicas"] == 5
    owners = {e["manager"]: e["owned"] for e in result["metadata"]["managedFields"]}
    assert ["spec", "replicas"] in owners["cli"] and "scaler" not in owners


def test_fields_dropped_from_the_manifest_are_pruned_but_others_kept() -> None:
    live = merge_apply(None, _deploy(paused=True), "cli", NOW)
    live["spec"]["minReadySeconds"] = 9  # set by someone without apply
    result = merge_apply(live, _deploy(), "cli", NOW)
    assert "paused" not in result["spec"]
    assert result["spec"]["minReadySeconds"] == 9


def test_status_is_never_touched_by_apply() -> None:
    live = merge_apply(None, _deploy(), "cli", NOW)
    live["status"] = {"replicas": 3}
    config = _deploy()
    config["status"] = {"replicas": 99}
    assert merge_apply(live, config, "cli", NOW)["status"] == {"replicas": 3}


def test_merge_patch_follows_rfc_7386() -> None:
    assert merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"b": {"c": None, "e": 4}, "f": [1]}) == \
        {"a": 1, "b": {"d": 3, "e": 4}, "f": [1]}
