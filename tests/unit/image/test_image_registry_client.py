"""Registry client against an in-memory registry (httpx.MockTransport): auth, safety, resume."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec
import pytest

from shoal.image import mediatypes as mt
from shoal.image.auth import Credentials, parse_challenge
from shoal.image.content import ContentStore
from shoal.image.errors import AuthError, DigestMismatchError, ManifestError
from shoal.image.oci import Descriptor, Manifest, sha256_digest
from shoal.image.pull import pull_image
from shoal.image.reference import parse_reference
from shoal.image.registry import RegistryClient

LAYER = b"layer-bytes" * 500
CONFIG = msgspec.json.encode(
    {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha256_digest(b"x")]}}
)
MANIFEST = msgspec.json.encode(
    Manifest(
        schema_version=2,
        media_type=mt.OCI_MANIFEST,
        config=Descriptor(media_type=mt.OCI_CONFIG, digest=sha256_digest(CONFIG), size=len(CONFIG)),
        layers=[Descriptor(media_type=mt.OCI_LAYER_GZIP, digest=sha256_digest(LAYER), size=len(LAYER))],
    )
)


class FakeRegistry:
    """Bearer-token protected registry: /token needs basic auth edge:pw, then serves one image."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []
        self.blobs = {sha256_digest(CONFIG): CONFIG, sha256_digest(LAYER): LAYER}
        self.manifest, self.content_type = MANIFEST, mt.OCI_MANIFEST

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.path
        if path == "/token":
            expected = "Basic " + base64.b64encode(b"edge:pw").decode()
            if request.headers.get("authorization") != expected:
                return httpx.Response(401)
            assert request.url.params["scope"] == "repository:acme/app:pull"
            assert request.url.params["service"] == "fake"
            return httpx.Response(200, json={"token": "T0K"})
        if request.headers.get("authorization") != "Bearer T0K":
            return httpx.Response(
                401,
                headers={
                    "WWW-Authenticate": 'Bearer realm="https://auth.example/token",'
                    'service="fake",scope="repository:acme/app:pull"'
                },
            )
        if path.endswith("/manifests/1.0"):
            return httpx.Response(200, content=self.manifest, headers={"Content-Type": self.content_type})
        digest = path.rsplit("/", 1)[1]
        data = self.blobs[digest]
        if rng := request.headers.get("range"):
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            return httpx.Response(
                206,
                content=data[start:],
                headers={"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"},
            )
        return httpx.Response(200, content=data)


def _pull(
    tmp_path: Path,
    fake: Callable[[httpx.Request], httpx.Response],
    creds: Credentials | None = Credentials("edge", "pw"),
) -> ContentStore:
    store = ContentStore(tmp_path)
    asyncio.run(
        pull_image(
            store,
            parse_reference("reg.example/acme/app:1.0"),
            credentials=creds,
            transport=httpx.MockTransport(fake),
        )
    )
    return store


def test_bearer_challenge_token_flow_over_https(tmp_path: Path) -> None:
    fake = FakeRegistry()
    store = _pull(tmp_path, fake)
    assert store.resolve("reg.example/acme/app:1.0").descriptor.digest == sha256_digest(MANIFEST)
    assert store.read(sha256_digest(LAYER)) == LAYER
    assert all(r.url.scheme == "https" for r in fake.requests)
    assert sum(r.url.path == "/token" for r in fake.requests) == 1  # the token is reused


def test_anonymous_and_wrong_credentials_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(AuthError, match="anonymous access denied; pass --creds"):
        _pull(tmp_path, FakeRegistry(), None)
    with pytest.raises(AuthError, match="credentials were rejected"):
        _pull(tmp_path, FakeRegistry(), Credentials("edge", "nope"))


def test_manifest_content_type_confusion_refused(tmp_path: Path) -> None:
    fake = FakeRegistry()
    fake.content_type = mt.OCI_INDEX
    with pytest.raises(ManifestError, match="CVE-2021-41190"):
        _pull(tmp_path, fake)


def test_blob_with_wrong_content_is_rejected_and_not_stored(tmp_path: Path) -> None:
    fake = FakeRegistry()
    fake.blobs[sha256_digest(LAYER)] = b"x" * len(LAYER)
    with pytest.raises(DigestMismatchError, match=sha256_digest(LAYER)):
        _pull(tmp_path, fake)
    assert not ContentStore(tmp_path).has(sha256_digest(LAYER))
    assert ContentStore(tmp_path).images() == []


def test_resume_sends_range_for_partial_blob(tmp_path: Path) -> None:
    store = ContentStore(tmp_path)
    w = store.writer(sha256_digest(LAYER), len(LAYER))
    w.write(LAYER[:1000])
    w.close()
    fake = FakeRegistry()
    _pull(tmp_path, fake)
    ranges = [r.headers.get("range") for r in fake.requests if r.url.path.endswith(sha256_digest(LAYER))]
    assert ranges[-1] == "bytes=1000-"
    assert store.read(sha256_digest(LAYER)) == LAYER


def test_manifest_by_digest_is_verified(tmp_path: Path) -> None:
    wrong = "sha256:" + "1" * 64

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=MANIFEST, headers={"Content-Type": mt.OCI_MANIFEST})

    async def go() -> None:
        async with RegistryClient("127.0.0.1:5000", transport=httpx.MockTransport(handler)) as client:
            assert client.base == "http://127.0.0.1:5000"
            await client.get_manifest("x", wrong)

    with pytest.raises(DigestMismatchError, match="expected " + wrong):
        asyncio.run(go())


def test_scheme_choice() -> None:
    assert RegistryClient("reg.local:5000").base == "https://reg.local:5000"
    assert RegistryClient("reg.local:5000", insecure=["reg.local:5000"]).base == "http://reg.local:5000"
    assert RegistryClient("[::1]:5000").base == "http://[::1]:5000"
    assert RegistryClient("docker.io").base == "https://registry-1.docker.io"


def test_parse_challenge() -> None:
    c = parse_challenge('Bearer realm="https://a/token",service="reg",scope="repository:x:pull,push"')
    assert c.scheme == "bearer" and c.params["scope"] == "repository:x:pull,push"
    assert parse_challenge('Basic realm="r"').scheme == "basic"
