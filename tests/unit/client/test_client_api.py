"""The sync and async clients against an in-memory implementation of the docs/api.md contract."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from shoal.client import ApiError, AsyncClient, Client, ClientConfig, ServerUnreachable, to_model
from shoal.client.fake import FakeApi
from shoal.model import Deployment

CONFIG = ClientConfig(server="http://fake.test", token="test-token", source="admin.yaml")


def deployment(name: str = "web", replicas: int = 2, **labels: str) -> dict[str, Any]:
    return {
        "apiVersion": "shoal/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": labels or {"app": name}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "web", "image": "web:1"}]}}},
    }


def pod(name: str, node: str = "", **labels: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "busybox"}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


@pytest.fixture
def client(fake: FakeApi) -> Any:
    with Client(CONFIG, transport=fake.transport()) as c:
        yield c


def test_create_get_and_list_with_resource_version(client: Client, fake: FakeApi) -> None:
    created = client.create(deployment())
    assert created["metadata"]["namespace"] == "default"
    assert fake.requests[-1].method == "POST"
    assert fake.requests[-1].url.path == "/api/v1/namespaces/default/deployments"
    assert fake.requests[-1].headers["Authorization"] == "Bearer test-token"
    got = client.get("deploy", "default", "web")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    items, rv = client.list("deployments", "default")
    assert [i["metadata"]["name"] for i in items] == ["web"]
    assert rv == str(fake.revision)
    assert isinstance(to_model(got), Deployment)


def test_list_passes_label_and_field_selectors(client: Client, fake: FakeApi) -> None:
    client.create(pod("a", node="gw-1", app="web"))
    client.create(pod("b", node="gw-2", app="web"))
    client.create(pod("c", node="gw-1", app="db"))
    items, _ = client.list("po", None, label_selector="app=web", field_selector="spec.nodeName=gw-1")
    assert [i["metadata"]["name"] for i in items] == ["a"]
    assert fake.requests[-1].url.path == "/api/v1/pods"
    assert fake.requests[-1].url.params["labelSelector"] == "app=web"


def test_cluster_scoped_paths_have_no_namespace(client: Client, fake: FakeApi) -> None:
    fake.seed({"kind": "Node", "metadata": {"name": "gw-1"}})
    client.merge_patch("node", "ignored", "gw-1", {"spec": {"unschedulable": True}})
    assert fake.requests[-1].url.path == "/api/v1/nodes/gw-1"
    assert fake.requests[-1].headers["Content-Type"] == "application/merge-patch+json"
    assert client.get("Node", None, "gw-1")["spec"]["unschedulable"] is True


def test_not_found_is_an_api_error_with_reason(client: Client) -> None:
    with pytest.raises(ApiError) as err:
        client.get("pod", "default", "ghost")
    assert err.value.status_code == 404
    assert err.value.reason == "NotFound"
    assert 'pods "ghost" not found' in err.value.message


def test_invalid_object_carries_field_causes(client: Client) -> None:
    bad = deployment()
    bad["spec"]["template"]["spec"]["containers"][0]["resources"] = {"limits": {"memory": "64MB"}}
    with pytest.raises(ApiError) as err:
        client.create(bad)
    assert err.value.status_code == 422
    assert err.value.causes[0].field == "spec.template.spec.containers[0].resources.limits.memory"
    assert "spec.template.spec.containers[0].resources.limits.memory" in err.value.describe()


def test_replace_with_stale_resource_version_conflicts(client: Client) -> None:
    first = client.create(deployment())
    client.replace({**first, "spec": {**first["spec"], "replicas": 4}})
    with pytest.raises(ApiError) as err:
        client.replace({**first, "spec": {**first["spec"], "replicas": 5}})
    assert err.value.status_code == 409
    assert client.get("deploy", "default", "web")["spec"]["replicas"] == 4


def test_apply_reports_created_configured_unchanged(client: Client, fake: FakeApi) -> None:
    obj, result = client.apply(deployment())
    assert result == "created"
    request = fake.requests[-1]
    assert request.method == "PATCH"
    assert request.headers["Content-Type"] == "application/apply-patch+json"
    assert request.url.params["fieldManager"] == "shoal-cli"
    assert client.apply(deployment())[1] == "unchanged"
    assert client.apply(deployment(replicas=3))[1] == "configured"
    assert obj["metadata"]["name"] == "web"


def test_delete_returns_last_state_and_object_is_gone(client: Client) -> None:
    client.create(pod("a"))
    assert client.delete("pods", "default", "a")["metadata"]["name"] == "a"
    with pytest.raises(ApiError):
        client.get("pods", "default", "a")


def test_status_and_scale_subresources(client: Client, fake: FakeApi) -> None:
    client.create(pod("a"))
    client.put_status({**pod("a"), "status": {"phase": "Running", "podIP": "10.0.0.5"}})
    assert fake.requests[-1].url.path == "/api/v1/namespaces/default/pods/a/status"
    assert client.get_status("pod", "default", "a")["status"]["podIP"] == "10.0.0.5"
    client.create(deployment())
    scale = client.scale("default", "web", 7)
    assert scale["kind"] == "Scale"
    assert scale["spec"]["replicas"] == 7
    assert client.get_scale("default", "web")["spec"]["replicas"] == 7


def test_heartbeats(client: Client, fake: FakeApi) -> None:
    client.heartbeat("gw-1")
    client.heartbeats(["gw-2", "gw-3"])
    assert fake.heartbeats == ["gw-1", "gw-2", "gw-3"]
    assert fake.requests[-1].url.path == "/api/v1/heartbeats"


def test_watch_yields_changes_after_a_revision(client: Client, fake: FakeApi) -> None:
    _, rv = client.list("pods", "default")
    client.create(pod("a"))
    client.merge_patch("pod", "default", "a", {"metadata": {"labels": {"x": "y"}}})
    client.delete("pod", "default", "a")
    events = [(kind, obj["metadata"]["name"]) for kind, obj in client.watch("pods", "default", rv)]
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert fake.requests[-1].url.path == "/api/v1/watch/namespaces/default/pods"
    assert fake.requests[-1].url.params["resourceVersion"] == rv


def test_watch_from_a_compacted_revision_raises_expired(client: Client, fake: FakeApi) -> None:
    client.create(pod("a"))
    fake.compacted = fake.revision
    with pytest.raises(ApiError) as err:
        list(client.watch("pods", "default", "1"))
    assert err.value.status_code == 410
    assert err.value.reason == "Expired"


def test_wrong_token_is_unauthorized() -> None:
    config = ClientConfig(server="http://fake.test", token="wrong")
    with Client(config, transport=FakeApi().transport()) as c, pytest.raises(ApiError) as err:
        c.list("pods", "default")
    assert err.value.status_code == 401


def test_non_status_error_body_still_gives_a_message() -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(502, text="<html>bad gateway</html>"))
    with Client(CONFIG, transport=transport) as c, pytest.raises(ApiError) as err:
        c.get("pod", "default", "a")
    assert err.value.status_code == 502
    assert err.value.is_server_fault
    assert "bad gateway" in err.value.message


def test_refused_connection_is_server_unreachable_with_url_and_hint() -> None:
    config = ClientConfig(server="http://127.0.0.1:1", token="t", source="/tmp/admin.yaml")
    with Client(config, timeout=2.0) as c, pytest.raises(ServerUnreachable) as err:
        c.list("pods", "default")
    assert err.value.url == "http://127.0.0.1:1"
    assert "shoal server" in err.value.hint
    assert "/tmp/admin.yaml" in err.value.hint


def test_async_client_speaks_the_same_contract(fake: FakeApi) -> None:
    async def scenario() -> list[str]:
        async with AsyncClient(CONFIG, transport=fake.transport()) as c:
            await c.create(pod("a"))
            _, rv = await c.list("pods", "default")
            await c.delete("pods", "default", "a")
            applied, result = await c.apply(deployment())
            await c.heartbeats(["n1"])
            kinds = [kind async for kind, _ in c.watch("pods", "default", rv)]
            with pytest.raises(ApiError):
                await c.get("pods", "default", "a")
            return [*kinds, result, applied["metadata"]["name"]]

    assert asyncio.run(scenario()) == ["DELETED", "created", "web"]
    assert fake.heartbeats == ["n1"]
