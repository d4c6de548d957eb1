"""The server as a pull-through registry mirror: a real ``shoal server``, a real docker-registry behind a
counting proxy, and the agent's ImageService as three (then four) nodes."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from mirrorlab import CountingProxy, tree_fingerprint
from tests.conftest import RunningServer, join_node, start_server, stop_process
from tests.integration.image.imagelab import PASSWORD, USER, Registry, _start, busybox_layers

from shoal.agent.images import ImageService
from shoal.client import ClientConfig
from shoal.image.assemble import create_image
from shoal.image.auth import Credentials
from shoal.image.content import ContentStore
from shoal.image.errors import ImageError
from shoal.image.layers import unpack_rootfs
from shoal.image.pull import push_image
from shoal.image.reference import parse_reference


@dataclass
class Lab:
    server: RunningServer
    registry: Registry
    registry_proc: subprocess.Popen[bytes]
    proxy: CountingProxy
    image: str  # as the nodes name it: through the counting proxy
    digest: str
    blobs: list[str]

    def node(self, tmp: Path, name: str) -> ImageService:
        ca = yaml.safe_load(self.server.config_path.read_text())["ca"]
        config = ClientConfig(server=self.server.url, ca=ca, token=join_node(self.server, name))
        return ImageService(tmp / name / "images", server=config)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    registry_proc, registry = _start(tmp_path / "registry", False)
    proxy = CountingProxy(registry.host)
    server = None
    try:
        server = start_server(tmp_path / "server")
        store = ContentStore(tmp_path / "build")
        desc = create_image(store, "local/multi:1", busybox_layers(), config={"Cmd": ["/bin/sh"]})
        asyncio.run(push_image(store, "local/multi:1", parse_reference(f"{registry.host}/acme/multi:1")))
        manifest = store.manifest(desc.digest)
        blobs = [d.digest for d in (manifest.config, *manifest.layers)]
        yield Lab(server, registry, registry_proc, proxy, f"{proxy.host}/acme/multi:1", desc.digest, blobs)
    finally:
        if server is not None:
            stop_process(server.process)
        proxy.close()
        registry_proc.kill()
        registry_proc.wait(timeout=10)


def test_three_nodes_fetch_each_blob_upstream_once_and_a_fourth_gets_it_offline(
        lab: Lab, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shoal.agent.images")
    nodes = [lab.node(tmp_path, f"edge-{i}") for i in range(3)]

    async def pull_all() -> list[str]:
        prepared = await asyncio.gather(*(node.prepare(lab.image) for node in nodes))
        return [p.digest for p in prepared]

    assert asyncio.run(pull_all()) == [lab.digest] * 3
    assert len(lab.blobs) == 4
    assert lab.proxy.blob_gets() == dict.fromkeys(lab.blobs, 1)  # one upstream fetch per blob, for three nodes
    assert lab.proxy.manifest_gets() == 1
    assert caplog.text.count("through the server's registry mirror at") == 3
    assert "directly from registry" not in caplog.text

    trees = []
    for i, node in enumerate(nodes):
        assert [i.name for i in node.store.images()] == [lab.image]  # named as the pod names it
        unpack_rootfs(node.store, lab.image, tmp_path / f"rootfs-{i}")
        trees.append(tree_fingerprint(tmp_path / f"rootfs-{i}"))
    assert trees[0] == trees[1] == trees[2]
    assert ("etc/motd", 0o100644, hashlib.sha256(b"hello\n").hexdigest()) in trees[0]
    assert subprocess.run([str(tmp_path / "rootfs-0/bin/busybox"), "true"], timeout=10).returncode == 0

    lab.registry_proc.kill()  # the outside world goes away
    lab.registry_proc.wait(timeout=10)
    lab.proxy.close()
    fourth = lab.node(tmp_path, "edge-3")
    assert asyncio.run(fourth.prepare(lab.image)).digest == lab.digest
    unpack_rootfs(fourth.store, lab.image, tmp_path / "rootfs-3")
    assert tree_fingerprint(tmp_path / "rootfs-3") == trees[0]


def test_the_mirror_speaks_the_distribution_api_to_nodes_only(lab: Lab) -> None:
    token = join_node(lab.server, "edge-api")
    host, repo = lab.image.split("/", 1)
    repo, tag = repo.rsplit(":", 1)
    with lab.server.http(token=None) as anonymous:
        denied = anonymous.get("/v2/")
        assert denied.status_code == 401
        assert denied.headers["www-authenticate"].startswith("Basic realm=")
        assert denied.json()["errors"][0]["code"] == "UNAUTHORIZED"
        wrong = anonymous.get("/v2/", auth=("edge-api", "not-a-token"))
        assert wrong.status_code == 401
        ok = anonymous.get("/v2/", auth=("edge-api", token))  # basic auth with the node token as password
        assert ok.status_code == 200 and ok.headers["docker-distribution-api-version"] == "registry/2.0"
    with lab.server.http(token=token) as node:
        head = node.head(f"/v2/{host}/{repo}/manifests/{tag}")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["docker-content-digest"] == lab.digest
        manifest = node.get(f"/v2/{host}/{repo}/manifests/{tag}")
        assert manifest.headers["content-type"] == "application/vnd.oci.image.manifest.v1+json"
        assert int(head.headers["content-length"]) == len(manifest.content)
        assert hashlib.sha256(manifest.content).hexdigest() == lab.digest.split(":")[1]
        layer = lab.blobs[1]
        whole = node.get(f"/v2/{host}/{repo}/blobs/{layer}")
        assert whole.status_code == 200 and hashlib.sha256(whole.content).hexdigest() == layer.split(":")[1]
        assert whole.headers["docker-content-digest"] == layer
        part = node.get(f"/v2/{host}/{repo}/blobs/{layer}", headers={"Range": "bytes=10-"})
        assert part.status_code == 206 and part.content == whole.content[10:]
        assert part.headers["content-range"] == f"bytes 10-{len(whole.content) - 1}/{len(whole.content)}"
        ns = node.get(f"/v2/{repo}/manifests/{tag}", params={"ns": host})  # containerd's mirror convention
        assert ns.status_code == 200 and ns.content == manifest.content
        missing = node.get(f"/v2/{host}/{repo}/manifests/no-such-tag")
        assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        bad = node.get(f"/v2/{repo}/manifests/{tag}")
        assert bad.status_code == 400 and "name the upstream registry first" in bad.text
        pod = node.get(f"/v2/{host}/{repo}/manifests/{tag}", headers={"X-Shoal-Pod": "default/not-mine"})
        assert pod.status_code == 403 and "does not exist" in pod.text
    assert lab.proxy.blob_gets()[layer] == 1


def test_a_node_falls_back_to_the_registry_when_the_server_is_unreachable(
        lab: Lab, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="shoal.agent.images")
    ca = yaml.safe_load(lab.server.config_path.read_text())["ca"]
    dead = ClientConfig(server="https://127.0.0.1:9", ca=ca, token="whatever")
    node = ImageService(tmp_path / "lonely", server=dead)
    assert asyncio.run(node.prepare(lab.image)).digest == lab.digest
    assert "through the server's registry mirror failed" in caplog.text
    assert f"pulling image {lab.image} directly from registry {lab.proxy.host}" in caplog.text


def test_a_private_registry_needs_a_pull_secret_through_the_mirror(tmp_path: Path) -> None:
    registry_proc, registry = _start(tmp_path / "private", True)
    server = None
    try:
        server = start_server(tmp_path / "server")
        store = ContentStore(tmp_path / "build")
        create_image(store, "local/p:1", busybox_layers())
        name = f"{registry.host}/acme/private:1"
        asyncio.run(push_image(store, "local/p:1", parse_reference(name), credentials=Credentials(USER, PASSWORD)))
        ca = yaml.safe_load(server.config_path.read_text())["ca"]
        node = ImageService(tmp_path / "n", server=ClientConfig(server=server.url, ca=ca,
                                                                token=join_node(server, "edge-p")))
        with pytest.raises(ImageError, match="requires a login"):
            asyncio.run(node.prepare(name))  # neither the mirror nor the registry lets it in without a secret
        config = {"auths": {registry.host: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}
        prepared = asyncio.run(node.prepare(name, docker_configs=[json.dumps(config).encode()]))
        assert prepared.name == name
        with httpx.Client(base_url=server.url, verify=server.ssl_context(), timeout=10) as http:
            host, rest = name.split("/", 1)
            answer = http.get(f"/v2/{host}/{rest.replace(':', '/manifests/')}",
                              auth=("edge-p", join_node(server, "edge-q")))
        assert answer.status_code == 403 and answer.json()["errors"][0]["code"] == "DENIED"
    finally:
        if server is not None:
            stop_process(server.process)
        registry_proc.kill()
        registry_proc.wait(timeout=10)
