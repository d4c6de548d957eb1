"""The REST API as a client sees it: auth, CRUD, Status errors, apply, scale, watch."""

from __future__ import annotations

import json
import threading

from tests.conftest import RunningServer, join_node

# Pinned to a node so that the scheduler leaves these pods alone: the tests see only their own writes.
POD = {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": "p1", "labels": {"app": "web"}},
       "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox:1"}]}}
DEPLOY = {"apiVersion": "shoal/v1", "kind": "Deployment", "metadata": {"name": "web"},
          "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                   "template": {"metadata": {"labels": {"app": "web"}},
                                "spec": {"containers": [{"name": "web", "image": "web:1"}]}}}}
PODS = "/api/v1/namespaces/default/pods"


def test_public_and_protected_paths(server: RunningServer) -> None:
    with server.http(token=None) as anonymous:
        assert anonymous.get("/healthz").text == "ok"
        assert anonymous.get("/version").json()["apiVersion"] == "shoal/v1"
        assert anonymous.get("/openapi.json").json()["openapi"].startswith("3.")
        denied = anonymous.get(PODS)
        assert denied.status_code == 401
        assert denied.json() == {"kind": "Status", "apiVersion": "shoal/v1", "status": "Failure",
                                 "message": "Unauthorized", "reason": "Unauthorized", "code": 401,
                                 "details": {}}
        assert anonymous.get("/metrics").status_code == 401
    with server.http(token="wrong") as wrong:
        assert wrong.get("/api/v1/namespaces/default/pods/p1").status_code == 401


def test_crud_and_errors(server: RunningServer) -> None:
    with server.http() as http:
        created = http.post(PODS, json=POD)
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["metadata"]["namespace"] == "default"
        assert body["metadata"]["uid"] and int(body["metadata"]["resourceVersion"]) > 0
        assert body["status"]["phase"] == "Pending" and body["status"]["qosClass"] == "BestEffort"
        again = http.post(PODS, json=POD)
        assert again.status_code == 409 and again.json()["reason"] == "AlreadyExists"
        listed = http.get(PODS, params={"labelSelector": "app=web"}).json()
        assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == ["p1"]
        assert http.get(PODS, params={"labelSelector": "app=db"}).json()["items"] == []
        stale = dict(body, metadata={**body["metadata"], "resourceVersion": "1"})
        conflict = http.put(f"{PODS}/p1", json=stale)
        assert conflict.status_code == 409 and conflict.json()["reason"] == "Conflict"
        missing = http.get(f"{PODS}/nope")
        assert missing.status_code == 404 and missing.json()["details"]["name"] == "nope"
        assert http.delete(f"{PODS}/p1").status_code == 200
        assert http.get(f"{PODS}/p1").status_code == 404


def test_invalid_input_names_the_field(server: RunningServer) -> None:
    with server.http() as http:
        bad = dict(DEPLOY, spec={**DEPLOY["spec"], "replicaz": 2})  # type: ignore[dict-item]
        response = http.post("/api/v1/namespaces/default/deployments", json=bad)
        assert response.status_code == 422
        status = response.json()
        assert status["reason"] == "Invalid"
        assert status["details"]["causes"][0]["field"] == "spec.replicaz"
        assert 'did you mean "replicas"' in status["details"]["causes"][0]["message"]
        garbage = http.post("/api/v1/namespaces/default/deployments", content=b"{not json",
                            headers={"content-type": "application/json"})
        assert garbage.status_code == 400 and garbage.json()["kind"] == "Status"
        wrong_type = http.post("/api/v1/namespaces/default/deployments", content=b"x",
                               headers={"content-type": "text/plain"})
        assert wrong_type.status_code == 415
        assert http.get("/api/v1/namespaces/default/widgets").status_code == 404
        assert http.post("/api/v1/namespaces/nope/pods", json=POD).status_code == 404
        assert http.get("/api/v1/deployments").json()["items"] == []  # nothing was stored


def test_apply_and_scale_keep_each_others_fields(server: RunningServer) -> None:
    path = "/api/v1/namespaces/default/deployments/web"
    headers = {"content-type": "application/apply-patch+json"}
    with server.http() as http:
        first = http.patch(path, params={"fieldManager": "cli"}, content=json.dumps(DEPLOY), headers=headers)
        assert first.status_code == 201 and first.headers["x-shoal-apply"] == "created"
        same = http.patch(path, params={"fieldManager": "cli"}, content=json.dumps(DEPLOY), headers=headers)
        assert same.headers["x-shoal-apply"] == "unchanged"
        scaled = http.put(f"{path}/scale", json={"spec": {"replicas": 7}})
        assert scaled.status_code == 200 and scaled.json()["spec"]["replicas"] == 7
        reapplied = http.patch(path, params={"fieldManager": "cli"}, content=json.dumps(DEPLOY), headers=headers)
        assert reapplied.json()["spec"]["replicas"] == 7  # a re-apply does not undo the scale
        changed = json.loads(json.dumps(DEPLOY))
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = "web:2"
        result = http.patch(path, params={"fieldManager": "cli"}, content=json.dumps(changed), headers=headers)
        assert result.headers["x-shoal-apply"] == "configured"
        assert result.json()["spec"]["template"]["spec"]["containers"][0]["image"] == "web:2"
        assert result.json()["metadata"]["generation"] == 3


def test_watch_replays_then_streams(server: RunningServer) -> None:
    with server.http() as http:
        start = int(http.get(PODS).json()["metadata"]["resourceVersion"])
        http.post(PODS, json=POD)
        seen: list[tuple[str, str]] = []

        def follow() -> None:
            with server.http() as watcher, watcher.stream("GET", "/api/v1/watch/namespaces/default/pods",
                                                          params={"resourceVersion": str(start)}) as stream:
                for line in stream.iter_lines():
                    event = json.loads(line)
                    seen.append((event["type"], event["object"]["metadata"]["name"]))
                    if len(seen) == 3:
                        return

        thread = threading.Thread(target=follow, daemon=True)
        thread.start()
        http.post(PODS, json=dict(POD, metadata={"name": "p2"}))
        http.delete(f"{PODS}/p1")
        thread.join(timeout=10)
        assert seen == [("ADDED", "p1"), ("ADDED", "p2"), ("DELETED", "p1")]


def test_watch_rejects_a_bad_revision(server: RunningServer) -> None:
    with server.http() as http, http.stream("GET", "/api/v1/watch/namespaces/default/pods",
                                            params={"resourceVersion": "abc"}) as bad:
        assert bad.status_code == 400


def test_a_node_token_writes_only_its_own_things(server: RunningServer) -> None:
    token = join_node(server, "gw-1")
    node = {"apiVersion": "shoal/v1", "kind": "Node", "metadata": {"name": "gw-1"}}
    with server.http() as admin, server.http(token=token) as gw:
        assert gw.post("/api/v1/nodes", json=node).status_code == 201
        other = gw.post("/api/v1/nodes", json=dict(node, metadata={"name": "gw-2"}))
        assert other.status_code == 403 and other.json()["reason"] == "Forbidden"
        assert gw.post("/api/v1/nodes/gw-1/heartbeat").status_code == 204
        assert gw.post("/api/v1/heartbeats", json={"nodes": ["gw-1", "gw-2"]}).status_code == 403
        mine = dict(POD, metadata={"name": "mine"}, spec={**POD["spec"], "nodeName": "gw-1"})  # type: ignore[dict-item]
        theirs = dict(POD, metadata={"name": "theirs"}, spec={**POD["spec"], "nodeName": "gw-2"})  # type: ignore[dict-item]
        assert gw.post(PODS, json=mine).status_code == 403  # nodes do not create pods
        for pod in (mine, theirs):
            assert admin.post(PODS, json=pod).status_code == 201
        assert gw.get(PODS).status_code == 200
        running = {"status": {"phase": "Running"}}
        assert gw.put(f"{PODS}/mine/status", json={**mine, **running}).status_code == 200
        assert gw.put(f"{PODS}/theirs/status", json={**theirs, **running}).status_code == 403
        assert gw.delete(f"{PODS}/theirs").status_code == 403
        assert gw.get("/api/v1/namespaces/default/deployments").status_code == 403
