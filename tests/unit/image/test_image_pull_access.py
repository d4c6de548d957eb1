"""Which endpoint and which login a pull uses: mirrors in order, fallback to the origin, stored logins."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx
import pytest
from tests.tarballs import tar_of

from shoal.image import mediatypes as mt
from shoal.image.assemble import create_image
from shoal.image.auth import Credentials
from shoal.image.content import ContentStore
from shoal.image.credentials import AuthFile
from shoal.image.errors import AuthError, RegistryUnavailableError
from shoal.image.pull import RegistryAccess, pull_image, push_image
from shoal.image.reference import parse_reference
from shoal.image.registryconfig import parse

REF = parse_reference("reg.example/acme/app:1.0")


class Fleet:
    """Fake registries by host: each serves the image from ``source``; some are down or need a login."""

    def __init__(self, source: ContentStore, down: frozenset[str] = frozenset(), logins: dict[str, str] | None = None
                 ) -> None:
        self.source, self.down, self.logins = source, down, logins or {}
        self.hits: list[str] = []
        self.digest = source.resolve("src").descriptor.digest

    def __call__(self, request: httpx.Request) -> httpx.Response:
        host = request.url.netloc.decode()
        self.hits.append(f"{request.method} {request.url.scheme}://{host}{request.url.path}")
        if host in self.down:
            raise httpx.ConnectError("connection refused", request=request)
        if host in self.logins:
            want = "Basic " + base64.b64encode(self.logins[host].encode()).decode()
            if request.headers.get("authorization") != want:
                return httpx.Response(401, headers={"WWW-Authenticate": 'Basic realm="x"'})
        path = request.url.path
        if request.method == "GET" and "/manifests/" in path:
            body = self.source.read(self.digest)
            return httpx.Response(200, content=body, headers={"Content-Type": mt.OCI_MANIFEST})
        if request.method == "GET" and "/blobs/" in path:
            return httpx.Response(200, content=self.source.read(path.rsplit("/", 1)[1]))
        if request.method == "HEAD" and "/blobs/" in path:
            return httpx.Response(200)
        if request.method == "PUT" and "/manifests/" in path:
            return httpx.Response(201)
        return httpx.Response(404)


@pytest.fixture
def source(tmp_path: Path) -> ContentStore:
    store = ContentStore(tmp_path / "src")
    create_image(store, "src", [tar_of(("hello", b"world", 0o644))])
    return store


def _pull(tmp_path: Path, fleet: Fleet, access: RegistryAccess) -> str:
    store = ContentStore(tmp_path / "dst")
    result = asyncio.run(pull_image(store, REF, access=access, transport=httpx.MockTransport(fleet)))
    return result.digest


def test_first_working_mirror_serves_the_pull(tmp_path: Path, source: ContentStore) -> None:
    cfg = parse({"mirrors": {"reg.example": {"endpoints": ["https://m1.local", "http://m2.local:5000"]}}})
    fleet = Fleet(source, down=frozenset({"m1.local"}))
    assert _pull(tmp_path, fleet, RegistryAccess(cfg)) == fleet.digest
    hosts = [h.split("/")[2] for h in fleet.hits]
    assert hosts[0] == "m1.local" and set(hosts[1:]) == {"m2.local:5000"}
    assert fleet.hits[1].startswith("GET http://m2.local:5000/v2/acme/app/manifests/1.0")


def test_all_mirrors_down_falls_back_to_the_origin(tmp_path: Path, source: ContentStore) -> None:
    cfg = parse({"mirrors": {"*": {"endpoints": ["https://m1.local"]}}})
    fleet = Fleet(source, down=frozenset({"m1.local"}))
    assert _pull(tmp_path, fleet, RegistryAccess(cfg)) == fleet.digest
    assert {h.split("/")[2] for h in fleet.hits[1:]} == {"reg.example"}


def test_origin_failure_mentions_the_mirrors_tried(tmp_path: Path, source: ContentStore) -> None:
    cfg = parse({"mirrors": {"reg.example": {"endpoints": ["https://m1.local"]}}})
    with pytest.raises(RegistryUnavailableError, match=r"cannot reach registry reg.example.*mirrors failed first: "
                       r"https://m1.local: cannot reach registry m1.local"):
        _pull(tmp_path, Fleet(source, down=frozenset({"m1.local", "reg.example"})), RegistryAccess(cfg))


def test_logins_come_from_creds_then_auth_file_then_registries_yaml(tmp_path: Path, source: ContentStore) -> None:
    fleet = Fleet(source, logins={"reg.example": "edge:right", "m1.local": "mirror:pw"})
    with pytest.raises(AuthError, match=r"requires a login.*shoal registry login reg\.example"):
        _pull(tmp_path, fleet, RegistryAccess())
    logins = AuthFile(tmp_path / "auth.json")
    logins.set("reg.example", Credentials("edge", "right"))
    assert _pull(tmp_path, fleet, RegistryAccess(logins=logins)) == fleet.digest
    with pytest.raises(AuthError, match="credentials for user 'edge' were rejected"):
        _pull(tmp_path, fleet, RegistryAccess(logins=logins, credentials=Credentials("edge", "wrong")))
    # the mirror's login comes from registries.yaml; --creds are never sent to a mirror
    cfg = parse({"mirrors": {"reg.example": {"endpoints": ["https://m1.local"]}},
                 "configs": {"m1.local": {"auth": {"username": "mirror", "password": "pw"}}}})
    fleet.hits.clear()
    access = RegistryAccess(cfg, credentials=Credentials("edge", "right"))
    assert _pull(tmp_path / "again", fleet, access) == fleet.digest
    assert all("m1.local" in h for h in fleet.hits)


def test_push_goes_to_the_origin_with_the_stored_login(tmp_path: Path, source: ContentStore) -> None:
    cfg = parse({"mirrors": {"reg.example": {"endpoints": ["https://m1.local"]}}})
    fleet = Fleet(source, logins={"reg.example": "edge:right"})
    logins = AuthFile(tmp_path / "auth.json")
    logins.set("reg.example", Credentials("edge", "right"))
    access = RegistryAccess(cfg, logins=logins)
    asyncio.run(push_image(source, "src", REF, access=access, transport=httpx.MockTransport(fleet)))
    assert fleet.hits and all("//reg.example/" in h for h in fleet.hits)
