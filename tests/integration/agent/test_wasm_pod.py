"""A `runtime: wasm` pod through the whole stack: a FROM-scratch image holding one module is pushed
to a real registry, a real agent pulls it (through the server's mirror), its wasm host runs it, the
pod ends Succeeded with its output in `shoal logs`, and a module in an endless loop is stopped at
its CPU limit with the reason in the pod's status."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
from agentenv import AgentEnv, Server, wait_until
from tests.tarballs import tar_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "wasm"))

from wasmlab import HELLO, LOOP, wat2wasm

NODE = "edge-1"


def push_module(tmp: Path, registry: str, name: str, wat: str) -> str:
    from shoal.image.assemble import create_image
    from shoal.image.content import ContentStore
    from shoal.image.pull import push_image
    from shoal.image.reference import parse_reference

    module = wat2wasm(wat, tmp / f"{name}.wasm").read_bytes()
    ref = f"{registry}/test/{name}:1"
    store = ContentStore(tmp / "wasm-build-store")
    create_image(store, ref, [tar_of(("app.wasm", module, 0o644))], config={"Cmd": ["app.wasm"]})
    asyncio.run(push_image(store, ref, parse_reference(ref)))
    return ref


def wasm_pod(name: str, image: str, **container: Any) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": NODE, "runtime": "wasm", "restartPolicy": "Never",
                     "containers": [{"name": "main", "image": image, **container}]}}


def status(http: httpx.Client, name: str) -> dict[str, Any]:
    return dict(http.get(f"/api/v1/namespaces/default/pods/{name}").json().get("status") or {})


def test_a_wasm_pod_runs_to_completion_and_an_endless_one_stops_at_its_cpu_limit(
        agent_env: AgentEnv, server: Server, image: str, tmp_path: Path) -> None:
    registry = image.split("/", 1)[0]
    hello = push_module(tmp_path, registry, "hello-wasm", HELLO)
    loop = push_module(tmp_path, registry, "loop-wasm", LOOP)
    agent_env.start(token=server.join_token, name=NODE)
    with server.http() as http:
        node = wait_until(lambda: (r := http.get(f"/api/v1/nodes/{NODE}")).status_code == 200 and r.json(), 60,
                          "node registration")
        assert "wasm" in node["status"]["runtimes"], node["status"]

        created = http.post("/api/v1/namespaces/default/pods",
                            json=wasm_pod("hello", hello, args=["from", "shoal"], env=[{"name": "GREETING",
                                                                                         "value": "hi"}]))
        assert created.status_code == 201, created.text
        wait_until(lambda: status(http, "hello").get("phase") == "Succeeded", 60, "the wasm pod Succeeded")
        logs = server.cli("logs", "hello")
        assert logs.returncode == 0, logs.stderr
        assert "from shoal" in logs.stdout and "GREETING=hi" in logs.stdout, logs.stdout
        assert agent_env.runc_list() == {}, "a wasm pod must not make runc containers"

        spinning = wasm_pod("spin", loop, resources={"limits": {"cpu": "100m"}})
        assert http.post("/api/v1/namespaces/default/pods", json=spinning).status_code == 201
        stopped = wait_until(lambda: status(http, "spin") if status(http, "spin").get("phase") == "Failed" else None,
                             60, "the looping module stopped at its CPU limit")
        container = stopped["containerStatuses"][0]
        assert container["state"] == "Stopped" and container["exitCode"] == 137, container
        for name in ("hello", "spin"):
            http.delete(f"/api/v1/namespaces/default/pods/{name}")
        wait_until(lambda: not http.get("/api/v1/namespaces/default/pods").json()["items"], 30, "pods removed")
