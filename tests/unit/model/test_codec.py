"""Decoding manifests: every mistake names its field and, where it can, the fix."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from shoal.model import Deployment, Pod, ValidationError, decode_object, lookup

DEPLOY: dict[str, Any] = {
    "apiVersion": "shoal/v1", "kind": "Deployment", "metadata": {"name": "web"},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
             "template": {"metadata": {"labels": {"app": "web"}},
                          "spec": {"containers": [{"name": "web", "image": "web:2",
                                                   "resources": {"limits": {"memory": "64Mi"}}}]}}},
}


def _error(doc: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        decode_object(doc)
    return str(info.value)


def _with(path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(DEPLOY)
    *parents, last = path.split(".")
    target: Any = doc
    for key in parents:
        target = target[int(key)] if key.isdigit() else target[key]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return doc


def test_a_good_manifest_decodes_and_round_trips() -> None:
    deploy = decode_object(DEPLOY)
    assert isinstance(deploy, Deployment)
    assert deploy.spec.template.spec.containers[0].image == "web:2"
    again = decode_object(msgspec.json.decode(msgspec.json.encode(deploy)))
    assert again == deploy


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("spec.template.spec.containers.0.resources.limits.memory", "64MB",
     'spec.template.spec.containers[0].resources.limits.memory: "64MB" is not a quantity; did you mean "64Mi"'),
    ("spec.replicaz", 2, 'spec.replicaz: unknown field "replicaz"; did you mean "replicas"?'),
    ("spec.replicas", "three", "spec.replicas: expected int, got str"),
    ("spec.replicas", -1, "spec.replicas: must not be negative"),
    ("metadata.name", "Web_App", 'metadata.name: "Web_App" is not a valid DNS-1123 name'),
    ("spec.template.spec.restartPolicy", "Sometimes",
     "spec.template.spec.restartPolicy: invalid value 'Sometimes'; allowed values: Always, OnFailure, Never"),
    ("spec.template.spec.schedulingPolicy", "BestFitt", 'did you mean "BestFit"?'),
    ("spec.template.metadata.labels", {"app": "db"}, "spec.template.metadata.labels: must match spec.selector"),
    ("apiVersion", "v1", 'apiVersion: "v1" is not supported; use "shoal/v1"'),
    ("kind", "Deploy", 'kind: "Deploy" is not a kind; did you mean "Deployment"?'),
    ("kind", "Widget", 'kind: unknown resource type "Widget"'),
])
def test_mistakes_name_the_field_and_the_fix(path: str, value: Any, expected: str) -> None:
    assert expected in _error(_with(path, value))


def test_missing_required_fields() -> None:
    doc = copy.deepcopy(DEPLOY)
    del doc["spec"]["template"]["spec"]["containers"][0]["image"]
    assert "spec.template.spec.containers[0].image: required field is missing" in _error(doc)


def test_container_names_and_volume_references() -> None:
    doc = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {
        "containers": [{"name": "a", "image": "x", "volumeMounts": [{"name": "dta", "mountPath": "/d"}]},
                       {"name": "a", "image": "y"}],
        "volumes": [{"name": "data", "emptyDir": {}}]}}
    message = _error(doc)
    assert 'spec.containers[1].name: duplicate container name "a"' in message
    assert 'spec.containers[0].volumeMounts[0].name: no volume named "dta" in spec.volumes; did you mean "data"?' \
        in message


def test_requests_above_limits_are_refused() -> None:
    doc = {"kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "a", "image": "x", "resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "500m"}}}]}}
    assert "request 2 is more than the limit 500m" in _error(doc)


def test_kind_names_resolve() -> None:
    for name in ("pod", "pods", "po", "Pod"):
        assert lookup(name).cls is Pod
    assert lookup("deploy").kind == "Deployment"
