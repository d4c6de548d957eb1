"""The CLI as a user types it, against an in-memory API: output, exit codes and what gets stored."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import Result

from shoal.cli import common
from shoal.client import Client
from shoal.client.fake import FakeApi

Shoal = Callable[..., Result]

WEB = """\
apiVersion: shoal/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: web:2}]}
---
apiVersion: shoal/v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80, targetPort: 8080}]}
"""


def pod(name: str, *, node: str = "", phase: str = "Running", owner: str = "", ns: str = "default",
        **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": ns, "creationTimestamp": "2020-01-01T00:00:00Z"}
    if owner:
        kind, _, owner_name = owner.partition("/")
        meta["ownerReferences"] = [{"kind": kind, "name": owner_name, "uid": "u1", "controller": True}]
    return {"kind": "Pod", "metadata": meta,
            "spec": {"containers": [{"name": "c", "image": "busybox"}], "nodeName": node},
            "status": {"phase": phase, "podIP": "10.77.0.9" if node else "",
                       "containerStatuses": [{"name": "c", "ready": phase == "Running", "restartCount": 2,
                                              "state": "Running"}]}, **extra}


def test_apply_creates_then_reports_unchanged_and_configured(shoal: Shoal, fake: FakeApi, tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(WEB)
    first = shoal("apply", "-f", str(tmp_path / "web.yaml"))
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines() == ["deployment.shoal/web created", "service.shoal/web created"]
    assert shoal("apply", "-f", str(tmp_path / "web.yaml")).stdout.splitlines() == [
        "deployment.shoal/web unchanged", "service.shoal/web unchanged"]
    (tmp_path / "web.yaml").write_text(WEB.replace("replicas: 3", "replicas: 4"))
    assert shoal("apply", "-f", str(tmp_path / "web.yaml")).stdout.splitlines()[0] == "deployment.shoal/web configured"
    assert fake.objects[("deployments", "default", "web")]["spec"]["replicas"] == 4


def test_apply_with_one_bad_document_stores_nothing(shoal: Shoal, fake: FakeApi, tmp_path: Path) -> None:
    bad = WEB.replace("port: 80,", "port: 80, nodePort: 99,").replace("replicas: 3", "replicas: three")
    (tmp_path / "web.yaml").write_text(bad)
    result = shoal("apply", "-f", str(tmp_path / "web.yaml"))
    assert result.exit_code == 1
    assert f'error: {tmp_path / "web.yaml"} (document 1, Deployment "web"):\n  spec.replicas: ' in result.stderr
    assert "(document 2, Service \"web\")" in result.stderr
    assert "Traceback" not in result.output
    assert fake.requests == []


def test_apply_from_stdin_into_a_namespace(shoal: Shoal, fake: FakeApi) -> None:
    result = shoal("apply", "-n", "edge", "-f", "-", input="kind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n")
    assert result.stdout.strip() == "configmap.shoal/cfg created"
    assert ("configmaps", "edge", "cfg") in fake.objects


def test_apply_without_files_is_a_usage_error(shoal: Shoal) -> None:
    assert shoal("apply").exit_code == 2


def test_create_namespace_and_from_file(shoal: Shoal, fake: FakeApi, tmp_path: Path) -> None:
    assert shoal("create", "namespace", "edge").stdout.strip() == "namespace.shoal/edge created"
    assert ("namespaces", "", "edge") in fake.objects
    again = shoal("create", "ns", "edge")
    assert again.exit_code == 1
    assert 'namespaces "edge" already exists' in again.stderr
    bad = shoal("create", "namespace", "Bad_Name")
    assert bad.exit_code == 1
    assert 'metadata.name: "Bad_Name" is not a valid DNS-1123 name' in bad.stderr
    assert 'did you mean "bad-name"?' in bad.stderr
    (tmp_path / "web.yaml").write_text(WEB)
    assert shoal("create", "-n", "edge", "-f", str(tmp_path / "web.yaml")).exit_code == 0
    assert ("deployments", "edge", "web") in fake.objects
    assert shoal("create", "-n", "edge", "-f", str(tmp_path / "web.yaml")).exit_code == 1
    assert shoal("create", "pod", "x").exit_code == 2


def test_get_pods_table_and_wide(shoal: Shoal, fake: FakeApi) -> None:
    fake.seed(pod("web-1", node="gw-1"))
    fake.seed(pod("web-0", phase="Pending"))
    lines = shoal("get", "pods").stdout.splitlines()
    assert lines[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert lines[1].split()[:4] == ["web-0", "0/1", "Pending", "2"]
    assert lines[2].split()[:4] == ["web-1", "1/1", "Running", "2"]
    wide = shoal("get", "po", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[-2:] == ["IP", "NODE"]
    assert wide[2].split()[-2:] == ["10.77.0.9", "gw-1"]


def test_get_all_namespaces_adds_namespace_column(shoal: Shoal, fake: FakeApi) -> None:
    fake.seed(pod("a", ns="edge"))
    fake.seed(pod("b"))
    lines = shoal("get", "pods", "-A").stdout.splitlines()
    assert lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert [line.split()[:2] for line in lines[1:]] == [["default", "b"], ["edge", "a"]]


def test_get_json_is_bare_for_one_object_and_a_list_otherwise(shoal: Shoal, fake: FakeApi) -> None:
    fake.seed(pod("a"))
    one = json.loads(shoal("get", "pod", "a", "-o", "json").stdout)
    assert one["kind"] == "Pod"
    assert one["metadata"]["name"] == "a"
    many = json.loads(shoal("get", "pods", "-o", "json").stdout)
    assert many["kind"] == "List"
    assert [i["metadata"]["name"] for i in many["items"]] == ["a"]
    as_yaml = yaml.safe_load(shoal("get", "pod/a", "-o", "yaml").stdout)
    assert as_yaml["metadata"]["name"] == "a"
    assert shoal("get", "pods", "-o", "name").stdout.strip() == "pod/a"


def test_get_label_selector_and_empty_result(shoal: Shoal, fake: FakeApi) -> None:
    fake.seed({**pod("a"), "metadata": {**pod("a")["metadata"], "labels": {"app": "web"}}})
    fake.seed(pod("b"))
    assert [line.split()[0] for line in shoal("get", "pods", "-l", "app=web").stdout.splitlines()[1:]] == ["a"]
    empty = shoal("get", "deploy")
    assert empty.exit_code == 0
    assert "No resources found in default namespace." in empty.stderr


def test_get_other_kinds_have_kubectl_columns(shoal: Shoal, fake: FakeApi) -> None:
    fake.seed({"kind": "Node", "metadata": {"name": "gw-1", "labels": {"shoal.io/zone": "a", "shoal.io/arch": "arm64"}},
               "spec": {"unschedulable": True}, "status": {"phase": "Online"}})
    nodes = shoal("get", "nodes", "-o", "wide").stdout.splitlines()
    assert nodes[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "ZONE", "ARCH"]
    assert nodes[1].split()[:2] == ["gw-1", "Online,SchedulingDisabled"]
    assert nodes[1].split()[-2:] == ["a", "arm64"]
    fake.seed({"kind": "Service", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"type": "NodePort", "clusterIP": "10.96.0.7", "ports": [{"port": 80, "nodePort": 30080}]}})
    svc = shoal("get", "svc").stdout.splitlines()
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "AGE"]
    assert svc[1].split()[:4] == ["web", "NodePort", "10.96.0.7", "80:30080/TCP"]
    assert shoal("get", "ns").stdout.splitlines()[1].split()[:2] == ["default", "Active"]


def test_unknown_kind_and_missing_object_exit_1_without_traceback(shoal: Shoal) -> None:
    unknown = shoal("get", "pdos")
    assert unknown.exit_code == 1
    assert 'unknown resource type "pdos"' in unknown.stderr
    missing = shoal("get", "pod", "ghost")
    assert missing.exit_code == 1
    assert 'pods "ghost" not found' in missing.stderr
    assert "Traceback" not in missing.output


def test_bad_output_format_is_usage_and_bad_selector_is_user_error(shoal: Shoal) -> None:
    assert shoal("get", "pods", "-o", "xml").exit_code == 2
    bad = shoal("get", "pods", "-l", "app=(")
    assert bad.exit_code == 1
    assert "label selector" in bad.stderr


def test_get_watch_prints_changes_until_timeout(shoal: Shoal, fake: FakeApi) -> None:
    fake.seed(pod("a"))
    fake.compacted = 0
    result = shoal("get", "pods", "-w", "--timeout", "0.3")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[0] == "NAME"
    assert lines[1].split()[0] == "a"


def test_describe_pending_pod_shows_why_and_events(shoal: Shoal, fake: FakeApi) -> None:
    pending = pod("web-0", phase="Pending")
    pending["status"]["conditions"] = [{"type": "Scheduled", "status": "False", "reason": "Unschedulable",
                                        "message": "0/5 nodes are available: 5 Insufficient memory."}]
    fake.seed(pending)
    fake.seed({"kind": "Event", "metadata": {"name": "web-0.1", "namespace": "default"},
               "involvedObject": {"kind": "Pod", "name": "web-0", "namespace": "default"},
               "reason": "FailedScheduling", "type": "Warning", "message": "no fit"})
    fake.seed({"kind": "Event", "metadata": {"name": "other.1", "namespace": "default"},
               "involvedObject": {"kind": "Pod", "name": "other"}, "reason": "Scheduled", "message": "elsewhere"})
    out = shoal("describe", "pod", "web-0").stdout
    assert "Unschedulable:    0/5 nodes are available: 5 Insufficient memory." in out
    assert "FailedScheduling" in out
    assert "elsewhere" not in out
    assert "Events:" in out


def test_describe_scheduled_pod_shows_scores(shoal: Shoal, fake: FakeApi) -> None:
    scheduled = pod("web-1", node="gw-2")
    scheduled["metadata"]["annotations"] = {"shoal.io/scheduling-scores": '{"gw-1": 40, "gw-2": 87}'}
    fake.seed(scheduled)
    out = shoal("describe", "po/web-1").stdout
    assert "Scheduling scores (why this node won):" in out
    score_lines = out.split("Scheduling scores (why this node won):")[1].splitlines()
    assert score_lines[2].split() == ["gw-2", "87"]


def test_delete_by_name_by_slash_and_by_file(shoal: Shoal, fake: FakeApi, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        fake.seed(pod(name))
    assert shoal("delete", "pod", "a").stdout.strip() == 'pod.shoal "a" deleted'
    assert shoal("delete", "po/b").exit_code == 0
    (tmp_path / "c.yaml").write_text("kind: Pod\nmetadata: {name: c}\nspec: {containers: [{name: c, image: x}]}\n")
    assert shoal("delete", "-f", str(tmp_path / "c.yaml")).exit_code == 0
    assert not [k for k in fake.objects if k[0] == "pods"]
    missing = shoal("delete", "pod", "zzz")
    assert missing.exit_code == 1
    assert 'pods "zzz" not found' in missing.stderr
    assert shoal("delete", "pod", "zzz", "--ignore-not-found").exit_code == 0
    assert shoal("delete").exit_code == 2


def test_scale_both_spellings(shoal: Shoal, fake: FakeApi, tmp_path: Path) -> None:
    (tmp_path / "web.yaml").write_text(WEB)
    shoal("apply", "-f", str(tmp_path / "web.yaml"))
    assert shoal("scale", "deploy/web", "--replicas", "5").stdout.strip() == "deployment.shoal/web scaled"
    assert fake.objects[("deployments", "default", "web")]["spec"]["replicas"] == 5
    shoal("scale", "deployment", "web", "--replicas", "0")
    assert fake.objects[("deployments", "default", "web")]["spec"]["replicas"] == 0
    assert shoal("scale", "svc/web", "--replicas", "2").exit_code == 1
    assert shoal("scale", "deploy/web").exit_code == 2
    assert shoal("scale", "deploy/nope", "--replicas", "1").exit_code == 1


def test_node_cordon_uncordon(shoal: Shoal, fake: FakeApi) -> None:
    fake.seed({"kind": "Node", "metadata": {"name": "gw-1"}})
    assert shoal("node", "cordon", "gw-1").stdout.strip() == "node/gw-1 cordoned"
    assert fake.objects[("nodes", "", "gw-1")]["spec"]["unschedulable"] is True
    assert shoal("node", "cordon", "gw-1").stdout.strip() == "node/gw-1 already cordoned"
    assert shoal("node", "uncordon", "gw-1").stdout.strip() == "node/gw-1 uncordoned"
    assert shoal("node", "cordon", "gw-9").exit_code == 1


def test_drain_refuses_bare_pods_then_force_deletes_them(shoal: Shoal, fake: FakeApi) -> None:
    fake.seed({"kind": "Node", "metadata": {"name": "gw-1"}})
    fake.seed(pod("web-1", node="gw-1", owner="Deployment/web"))
    fake.seed(pod("agent-x", node="gw-1", owner="DaemonSet/agent"))
    fake.seed(pod("bare", node="gw-1"))
    fake.seed(pod("elsewhere", node="gw-2", owner="Deployment/web"))
    refused = shoal("node", "drain", "gw-1")
    assert refused.exit_code == 1
    assert "default/bare" in refused.stderr
    assert ("pods", "default", "web-1") in fake.objects
    assert fake.objects[("nodes", "", "gw-1")]["spec"]["unschedulable"] is True
    forced = shoal("node", "drain", "gw-1", "--force")
    assert forced.exit_code == 0
    assert "pod/web-1 evicted" in forced.stdout
    assert "ignoring DaemonSet-managed pods: default/agent-x" in forced.stderr
    remaining = sorted(k[2] for k in fake.objects if k[0] == "pods")
    assert remaining == ["agent-x", "elsewhere"]


def test_version(shoal: Shoal) -> None:
    result = shoal("version")
    assert result.stdout.splitlines()[0].startswith("Client Version: ")
    assert result.stdout.splitlines()[1] == "Server Version: fake"


def test_unreachable_server_exits_3(shoal: Shoal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "make_client", lambda cfg: Client(cfg, timeout=2.0))
    (tmp_path / "down.yaml").write_text("server: http://127.0.0.1:1\ntoken: t\n")
    result = shoal("--config", str(tmp_path / "down.yaml"), "get", "pods")
    assert result.exit_code == 3
    assert "cannot reach the shoal server at http://127.0.0.1:1" in result.stderr
    assert "hint:" in result.stderr


def test_server_fault_exits_3(shoal: Shoal, monkeypatch: pytest.MonkeyPatch) -> None:
    status = {"kind": "Status", "code": 500, "reason": "InternalError", "message": "database is locked"}
    transport = httpx.MockTransport(lambda r: httpx.Response(500, json=status))
    monkeypatch.setattr(common, "make_client", lambda cfg: Client(cfg, transport=transport))
    result = shoal("get", "pods")
    assert result.exit_code == 3
    assert "error: database is locked" in result.stderr


def test_missing_config_is_a_user_error(shoal: Shoal, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOAL_CONFIG")
    result = shoal("get", "pods")
    assert result.exit_code == 1
    assert "$SHOAL_CONFIG" in result.stderr


def test_config_option_after_the_verb_wins(shoal: Shoal, tmp_path: Path) -> None:
    (tmp_path / "other.yaml").write_text("server: http://fake.test\ntoken: wrong\n")
    result = shoal("get", "pods", "--config", str(tmp_path / "other.yaml"))
    assert result.exit_code == 1
    assert "Unauthorized" in result.stderr
