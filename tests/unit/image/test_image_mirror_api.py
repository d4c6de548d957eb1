"""The mirror's wire helpers: path parsing, byte ranges, the auth front, and pull secrets of a pod."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import msgspec
import pytest

from shoal.api.mirror import MirrorError, RegistryAuthFront, _byte_range, _split, pod_credentials
from shoal.image.auth import Credentials
from shoal.model import ObjectMeta, Pod, PodSpec, Secret
from shoal.store.fake import FakeStore


@pytest.mark.parametrize(("rest", "ns", "expected"), [
    ("/reg.example:5000/acme/app/manifests/1.0", None, ("reg.example:5000", "acme/app", "manifests", "1.0")),
    ("/127.0.0.1:5000/a/b/c/blobs/sha256:ab", None, ("127.0.0.1:5000", "a/b/c", "blobs", "sha256:ab")),
    ("/docker.io/library/alpine/manifests/3", None, ("docker.io", "library/alpine", "manifests", "3")),
    ("/acme/app/manifests/1", "reg.example", ("reg.example", "acme/app", "manifests", "1")),
])
def test_paths_name_the_upstream_registry(rest: str, ns: str | None, expected: tuple[str, ...]) -> None:
    assert _split(rest, ns) == expected


@pytest.mark.parametrize(("rest", "status", "hint"), [
    ("/acme/app/manifests/1", 400, "name the upstream registry first"),
    ("/reg.example/acme/app/tags/list", 404, "read-only"),
    ("/reg.example/Acme/manifests/1", 400, "lowercase"),
])
def test_bad_paths_say_what_to_send(rest: str, status: int, hint: str) -> None:
    with pytest.raises(MirrorError) as info:
        _split(rest, None)
    assert info.value.status == status and hint in info.value.message


def test_byte_ranges() -> None:
    assert _byte_range(None, 100) is None
    assert _byte_range("bytes=10-", 100) == (10, 99)
    assert _byte_range("bytes=10-19", 100) == (10, 19)
    assert _byte_range("bytes=90-500", 100) == (90, 99)
    assert _byte_range("bytes=-5", 100) == (95, 99)
    assert _byte_range("bytes=0-1,5-6", 100) is None  # multipart ranges: the whole blob
    with pytest.raises(MirrorError) as info:
        _byte_range("bytes=100-", 100)
    assert info.value.status == 416


def _call_front(headers: list[tuple[bytes, bytes]], path: str = "/v2/",
                extra: dict[str, Any] | None = None) -> tuple[int, dict[bytes, bytes], Any]:
    seen: dict[str, Any] = {}
    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["headers"] = dict(scope["headers"])
        await send({"type": "http.response.start", "status": 200, "headers": []})

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    front = RegistryAuthFront(app, {"tok": "node:edge-1"}.get)
    asyncio.run(front({"type": "http", "path": path, "headers": headers, **(extra or {})}, receive, send))
    return sent[0]["status"], dict(sent[0]["headers"]), seen.get("headers")


def test_the_front_turns_basic_auth_with_a_token_into_bearer() -> None:
    basic = b"Basic " + base64.b64encode(b"edge-1:tok")
    status, _, passed = _call_front([(b"authorization", basic)])
    assert status == 200 and passed[b"authorization"] == b"Bearer tok"
    assert _call_front([(b"authorization", b"Bearer tok")])[0] == 200


@pytest.mark.parametrize("header", [None, b"Bearer nope", b"Basic " + base64.b64encode(b"x:nope"), b"Basic !!"])
def test_the_front_challenges_like_a_registry(header: bytes | None) -> None:
    status, headers, passed = _call_front([(b"authorization", header)] if header else [])
    assert status == 401 and passed is None
    assert headers[b"www-authenticate"].startswith(b"Basic realm=")


def test_the_front_leaves_other_paths_alone() -> None:
    assert _call_front([], path="/api/v1/pods")[0] == 200


def test_the_front_lets_a_client_certificate_through_to_token_auth() -> None:
    tls = {"extensions": {"tls": {"client_cert_fields": {"subject": ((("commonName", "node:edge-1"),),)}}}}
    status, _, passed = _call_front([], extra=tls)
    assert status == 200 and b"authorization" not in passed


class _SecretRef(msgspec.Struct, frozen=True):
    name: str


class _SpecWithPullSecrets(PodSpec, frozen=True, kw_only=True):
    image_pull_secrets: list[_SecretRef] = msgspec.field(default_factory=list)


def _docker_config(registry: str) -> str:
    doc = {"auths": {registry: {"auth": base64.b64encode(b"edge:pw").decode()}}}
    return base64.b64encode(json.dumps(doc).encode()).decode()


def test_pull_secrets_of_a_pod_bound_to_the_node() -> None:
    async def scenario() -> None:
        store = FakeStore()
        spec = _SpecWithPullSecrets(node_name="edge-1", image_pull_secrets=[_SecretRef("gone"), _SecretRef("opaque"),
                                                                           _SecretRef("reg")])
        await store.create(Pod(metadata=ObjectMeta(name="app", namespace="default"), spec=spec))
        await store.create(Secret(metadata=ObjectMeta(name="opaque", namespace="default"), data={"x": "eA=="}))
        await store.create(Secret(metadata=ObjectMeta(name="reg", namespace="default"),
                                  type="kubernetes.io/dockerconfigjson",
                                  data={".dockerconfigjson": _docker_config("reg.example")}))
        assert await pod_credentials(store, "node:edge-1", "default/app", "reg.example") == Credentials("edge", "pw")
        assert await pod_credentials(store, "admin", "default/app", "reg.example") == Credentials("edge", "pw")
        assert await pod_credentials(store, "node:edge-1", "default/app", "other.example") is None
        with pytest.raises(MirrorError, match='not bound to node "edge-2"'):
            await pod_credentials(store, "node:edge-2", "default/app", "reg.example")
        with pytest.raises(MirrorError, match="does not exist"):
            await pod_credentials(store, "node:edge-1", "default/nope", "reg.example")

    asyncio.run(scenario())
