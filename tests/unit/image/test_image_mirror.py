"""The mirror's cache policy against an in-memory registry: single flight, verification, tag TTL and
stale answers, and dockerconfigjson credentials."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from shoal.image import mediatypes as mt
from shoal.image.auth import Credentials
from shoal.image.errors import AuthError, DigestMismatchError, RegistryError
from shoal.image.mirror import RegistryMirror, credentials_from_docker_config

LAYER = b"layer bytes " * 1000
CONFIG = b'{"rootfs": {"type": "layers", "diff_ids": []}}'


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


MANIFEST = json.dumps({
    "schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
    "config": {"mediaType": mt.OCI_CONFIG, "digest": _digest(CONFIG), "size": len(CONFIG)},
    "layers": [{"mediaType": mt.OCI_LAYER, "digest": _digest(LAYER), "size": len(LAYER)}],
}).encode()


class FakeRegistry:
    """``reg.test`` serving one image ``acme/app:1``; counts requests; can go down or need a login."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.down = False
        self.corrupt = False
        self.login: str | None = None

    async def handle(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if self.login and request.headers.get("authorization") != self.login:
            return httpx.Response(401, headers={"www-authenticate": 'Basic realm="reg"'})
        path = request.url.path
        self.counts[f"{request.method} {path}"] += 1
        if path.endswith("/manifests/1") or path.endswith(f"/manifests/{_digest(MANIFEST)}"):
            return httpx.Response(200, content=MANIFEST, headers={"content-type": mt.OCI_MANIFEST})
        blobs = {_digest(LAYER): LAYER, _digest(CONFIG): CONFIG}
        digest = path.rsplit("/", 1)[1]
        if "/blobs/" in path and digest in blobs:
            await asyncio.sleep(0.05)  # concurrent requests overlap
            body = blobs[digest]
            return httpx.Response(200, content=b"X" * len(body) if self.corrupt else body)
        return httpx.Response(404, json={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "unknown"}]})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _mirror(tmp_path: Path, fake: FakeRegistry, clock: Clock | None = None) -> RegistryMirror:
    return RegistryMirror(tmp_path / "mirror", transport=httpx.MockTransport(fake.handle), clock=clock or Clock(),
                          manifest_ttl=30)


def test_concurrent_requests_for_a_blob_fetch_it_upstream_once(tmp_path: Path) -> None:
    fake = FakeRegistry()

    async def scenario() -> list[int]:
        mirror = _mirror(tmp_path, fake)
        try:
            await mirror.manifest("reg.test", "acme/app", "1")
            blobs = await asyncio.gather(*(mirror.blob("reg.test", "acme/app", _digest(LAYER)) for _ in range(10)))
            again = await mirror.blob("reg.test", "acme/app", _digest(LAYER))
            return [b.size for b in [*blobs, again]]
        finally:
            await mirror.aclose()

    assert asyncio.run(scenario()) == [len(LAYER)] * 11
    assert fake.counts[f"GET /v2/acme/app/blobs/{_digest(LAYER)}"] == 1
    assert not any(k.startswith("HEAD") for k in fake.counts)  # the size came from the manifest
    assert (tmp_path / "mirror/blobs/sha256" / _digest(LAYER)[7:]).read_bytes() == LAYER


def test_a_blob_not_named_by_a_served_manifest_is_sized_with_head(tmp_path: Path) -> None:
    fake = FakeRegistry()

    async def scenario() -> int:
        mirror = _mirror(tmp_path, fake)
        try:
            return (await mirror.blob("reg.test", "acme/app", _digest(CONFIG))).size
        finally:
            await mirror.aclose()

    assert asyncio.run(scenario()) == len(CONFIG)
    assert fake.counts[f"HEAD /v2/acme/app/blobs/{_digest(CONFIG)}"] == 1


def test_a_blob_that_does_not_match_its_digest_is_never_cached(tmp_path: Path) -> None:
    fake = FakeRegistry()
    fake.corrupt = True

    async def scenario() -> None:
        mirror = _mirror(tmp_path, fake)
        try:
            await mirror.manifest("reg.test", "acme/app", "1")
            with pytest.raises(DigestMismatchError):
                await asyncio.gather(*(mirror.blob("reg.test", "acme/app", _digest(LAYER)) for _ in range(3)))
            assert mirror.cached_blob(_digest(LAYER)) is None
            fake.corrupt = False
            assert (await mirror.blob("reg.test", "acme/app", _digest(LAYER))).size == len(LAYER)
        finally:
            await mirror.aclose()

    asyncio.run(scenario())


def test_tags_are_trusted_for_the_ttl_then_asked_again_and_served_stale_when_upstream_is_down(
        tmp_path: Path) -> None:
    fake, clock = FakeRegistry(), Clock()
    path = "GET /v2/acme/app/manifests/1"

    async def scenario() -> None:
        mirror = _mirror(tmp_path, fake, clock)
        try:
            first = await mirror.manifest("reg.test", "acme/app", "1")
            assert first.digest == _digest(MANIFEST) and first.media_type == mt.OCI_MANIFEST
            clock.now += 10
            await mirror.manifest("reg.test", "acme/app", "1")
            assert fake.counts[path] == 1
            clock.now += 30
            await mirror.manifest("reg.test", "acme/app", "1")
            assert fake.counts[path] == 2
            fake.down = True
            clock.now += 100
            stale = await mirror.manifest("reg.test", "acme/app", "1")
            assert stale.body == MANIFEST
            by_digest = await mirror.manifest("reg.test", "acme/app", _digest(MANIFEST))
            assert by_digest.body == MANIFEST
        finally:
            await mirror.aclose()

    asyncio.run(scenario())

    async def after_restart() -> bytes:  # the tag and media type survive a server restart
        mirror = _mirror(tmp_path, fake, clock)
        try:
            return (await mirror.manifest("reg.test", "acme/app", "1")).body
        finally:
            await mirror.aclose()

    assert asyncio.run(after_restart()) == MANIFEST


def test_a_tag_resolved_with_credentials_is_not_answered_to_anonymous_requests(tmp_path: Path) -> None:
    fake = FakeRegistry()
    creds = Credentials("edge", "pw")
    fake.login = creds.basic_header()

    async def scenario() -> None:
        mirror = _mirror(tmp_path, fake)
        try:
            with pytest.raises(AuthError):
                await mirror.manifest("reg.test", "acme/app", "1")
            assert (await mirror.manifest("reg.test", "acme/app", "1", creds)).body == MANIFEST
            with pytest.raises(AuthError):  # asked upstream again, which refuses
                await mirror.manifest("reg.test", "acme/app", "1")
            fake.down = True
            with pytest.raises(RegistryError):
                await mirror.manifest("reg.test", "acme/app", "1")
            assert (await mirror.manifest("reg.test", "acme/app", "1", creds)).body == MANIFEST
        finally:
            await mirror.aclose()

    asyncio.run(scenario())


def _auth(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.mark.parametrize(("key", "registry"), [
    ("reg.example:5000", "reg.example:5000"),
    ("https://reg.example:5000/v2/", "reg.example:5000"),
    ("https://index.docker.io/v1/", "docker.io"),
    ("registry-1.docker.io", "docker.io"),
])
def test_docker_config_credentials_match_the_registry(key: str, registry: str) -> None:
    doc = json.dumps({"auths": {"other.example": {"auth": _auth("x", "y")}, key: {"auth": _auth("edge", "a:b")}}})
    assert credentials_from_docker_config(doc.encode(), registry) == Credentials("edge", "a:b")


def test_docker_config_with_username_password_or_no_entry() -> None:
    doc = json.dumps({"auths": {"reg.example": {"username": "u", "password": "p"}}}).encode()
    assert credentials_from_docker_config(doc, "reg.example") == Credentials("u", "p")
    assert credentials_from_docker_config(doc, "elsewhere.example") is None


@pytest.mark.parametrize(("doc", "message"), [
    (b"not json", "not valid JSON"),
    (b'{"registries": {}}', 'an "auths" mapping'),
    (b'{"auths": {"reg.example": {"auth": "!!!"}}}', "auths['reg.example'].auth must be base64 of USER:PASSWORD"),
])
def test_a_malformed_docker_config_names_the_field(doc: bytes, message: str) -> None:
    with pytest.raises(RegistryError, match="secret x") as info:
        credentials_from_docker_config(doc, "reg.example", "secret x")
    assert message in str(info.value)
