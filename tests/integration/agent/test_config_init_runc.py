"""A real agent and server with runc busybox containers: env from ConfigMaps and Secrets, configMap
volumes refreshed in place without a restart, init containers in order, a failing init container,
and a restarted agent without the server starting a container from its cached Secret and ConfigMap."""

from __future__ import annotations

import signal
import subprocess
from typing import Any

import httpx
from agentenv import AgentEnv, Server, kill_group, wait_until

SLEEP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]


def pod_manifest(name: str, image: str, **spec: Any) -> dict[str, Any]:
    containers = spec.pop("containers", [{"name": "app", "image": image, "command": SLEEP}])
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"nodeName": "edge-1", "terminationGracePeriodSeconds": 2, "containers": containers, **spec}}


def create(http: httpx.Client, plural: str, body: dict[str, Any]) -> None:
    response = http.post(f"/api/v1/namespaces/default/{plural}", json=body)
    assert response.status_code == 201, response.text


def status(http: httpx.Client, name: str) -> dict[str, Any]:
    response = http.get(f"/api/v1/namespaces/default/pods/{name}")
    response.raise_for_status()
    return dict(response.json().get("status") or {})


def running(http: httpx.Client, name: str) -> str:
    """The app container's id once the pod runs ('' before)."""
    s = status(http, name)
    statuses = s.get("containerStatuses") or []
    if s.get("phase") == "Running" and statuses and statuses[0]["state"] == "Running":
        return str(statuses[0]["containerId"])
    return ""


def run_in(env: AgentEnv, cid: str, *argv: str) -> str:
    out = subprocess.run(["runc", "--root", str(env.runc_root), "exec", cid, *argv], capture_output=True, text=True,
                         timeout=15)
    assert out.returncode == 0, out.stderr
    return out.stdout


def joined(env: AgentEnv, server: Server, http: httpx.Client) -> None:
    env.start(token=server.join_token)
    wait_until(lambda: http.get("/api/v1/nodes/edge-1").status_code == 200, 30, "node registration")


def test_env_from_config_map_and_secret(agent_env: AgentEnv, server: Server, image: str) -> None:
    with server.http() as http:
        joined(agent_env, server, http)
        container = {"name": "app", "image": image, "command": SLEEP,
                     "envFrom": [{"configMapRef": {"name": "app"}}, {"secretRef": {"name": "creds"}, "prefix": "DB_"}],
                     "env": [{"name": "ONE", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "LEVEL"}}},
                             {"name": "OPT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "k",
                                                                             "optional": True}}}]}
        create(http, "pods", pod_manifest("envy", image, containers=[container]))
        wait_until(lambda: (status(http, "envy").get("containerStatuses") or [{}])[0].get("reason")
                   == "CreateContainerConfigError", 30, "CreateContainerConfigError while the ConfigMap is missing")
        message = status(http, "envy")["containerStatuses"][0]["message"]
        assert 'ConfigMap "default/app" not found' in message and "envFrom[0].configMapRef" in message
        create(http, "configmaps", {"apiVersion": "shoal/v1", "kind": "ConfigMap", "metadata": {"name": "app"},
                                    "data": {"LEVEL": "debug", "COLOR": "blue"}})
        create(http, "secrets", {"apiVersion": "shoal/v1", "kind": "Secret", "metadata": {"name": "creds"},
                                 "stringData": {"PASSWORD": "s3cret-value"}})
        cid = wait_until(lambda: running(http, "envy"), 30, "the pod running once both exist")
        environ = run_in(agent_env, cid, "cat", "/proc/1/environ")  # the app's own environment
        env = dict(item.split("=", 1) for item in environ.split("\0") if "=" in item)
        assert env["LEVEL"] == "debug" and env["COLOR"] == "blue" and env["ONE"] == "debug"
        assert env["DB_PASSWORD"] == "s3cret-value" and "OPT" not in env
    assert "s3cret-value" not in agent_env.logs()


def test_config_map_volume_updates_in_place(agent_env: AgentEnv, server: Server, image: str) -> None:
    with server.http() as http:
        joined(agent_env, server, http)
        create(http, "configmaps", {"apiVersion": "shoal/v1", "kind": "ConfigMap", "metadata": {"name": "web"},
                                    "data": {"level": "debug"}})
        container = {"name": "app", "image": image, "command": SLEEP,
                     "volumeMounts": [{"name": "cfg", "mountPath": "/etc/web"}]}
        create(http, "pods", pod_manifest("files", image, containers=[container],
                                          volumes=[{"name": "cfg", "configMap": {"name": "web", "defaultMode": 0o600,
                                                    "items": [{"key": "level", "path": "conf/level"}]}}]))
        cid = wait_until(lambda: running(http, "files"), 30, "the pod running")
        pid = agent_env.runc_list()[cid][0]
        assert run_in(agent_env, cid, "cat", "/etc/web/conf/level") == "debug"
        assert run_in(agent_env, cid, "ls", "-lL", "/etc/web/conf/level").startswith("-rw-------")
        patch = http.patch("/api/v1/namespaces/default/configmaps/web", json={"data": {"level": "info"}},
                           headers={"Content-Type": "application/merge-patch+json"})
        assert patch.status_code == 200, patch.text
        wait_until(lambda: run_in(agent_env, cid, "cat", "/etc/web/conf/level") == "info", 10,
                   "the new content in the running container")
        assert agent_env.runc_list()[cid] == (pid, "running")  # same process: not restarted
        assert status(http, "files")["containerStatuses"][0]["restartCount"] == 0
        write = subprocess.run(["runc", "--root", str(agent_env.runc_root), "exec", cid, "touch", "/etc/web/x"],
                               capture_output=True, timeout=15)
        assert write.returncode != 0  # configMap volumes are read-only


def test_init_containers_run_in_order_before_the_app(agent_env: AgentEnv, server: Server, image: str) -> None:
    mount = [{"name": "work", "mountPath": "/work"}]
    inits = [{"name": "first", "image": image, "volumeMounts": mount,
              "command": ["sh", "-c", "sleep 1; echo first > /work/order"]},
             {"name": "second", "image": image, "volumeMounts": mount,
              "command": ["sh", "-c", "test -f /work/order && echo second >> /work/order"]}]
    app = {"name": "app", "image": image, "volumeMounts": mount, "command": SLEEP}
    with server.http() as http:
        joined(agent_env, server, http)
        create(http, "pods", pod_manifest("inits", image, containers=[app], initContainers=inits,
                                          volumes=[{"name": "work", "emptyDir": {}}]))
        seen = wait_until(lambda: (status(http, "inits").get("containerStatuses") or [{}])[0].get("reason"), 30,
                          "the pod initializing")
        assert seen.startswith("Init:")
        cid = wait_until(lambda: running(http, "inits"), 40, "the app running after both init containers")
        assert run_in(agent_env, cid, "cat", "/work/order") == "first\nsecond\n"
        final = status(http, "inits")
        assert [(s["name"], s["state"], s.get("exitCode")) for s in final["initContainerStatuses"]] == [
            ("first", "Stopped", 0), ("second", "Stopped", 0)]
        assert {c["type"]: c["status"] for c in final["conditions"]}["Initialized"] == "True"


def test_failing_init_container_crash_loops(agent_env: AgentEnv, server: Server, image: str) -> None:
    inits = [{"name": "check", "image": image, "command": ["sh", "-c", "echo not yet; exit 3"]}]
    with server.http() as http:
        joined(agent_env, server, http)
        create(http, "pods", pod_manifest("stuck", image, initContainers=inits))
        wait_until(lambda: (status(http, "stuck").get("initContainerStatuses") or [{}])[0].get("restartCount", 0)
                   >= 1, 30, "the init container restarted")
        wait_until(lambda: status(http, "stuck")["initContainerStatuses"][0].get("reason") == "CrashLoopBackOff", 20,
                   "CrashLoopBackOff")
        s = status(http, "stuck")
        assert s["phase"] == "Pending"
        assert {c["type"]: c["status"] for c in s["conditions"]}["Initialized"] == "False"
        assert s["containerStatuses"][0]["reason"] == "Init:CrashLoopBackOff"
        assert "app" not in {cid.rsplit("-", 1)[-1] for cid in agent_env.runc_list()}
        listing = server.cli("get", "pods")
        assert listing.returncode == 0 and "Init:CrashLoopBackOff" in listing.stdout


def test_restarted_agent_without_the_server_uses_cached_config(agent_env: AgentEnv, server: Server,
                                                                image: str) -> None:
    with server.http() as http:
        joined(agent_env, server, http)
        create(http, "secrets", {"apiVersion": "shoal/v1", "kind": "Secret", "metadata": {"name": "creds"},
                                 "stringData": {"TOKEN": "cached-token"}})
        create(http, "configmaps", {"apiVersion": "shoal/v1", "kind": "ConfigMap", "metadata": {"name": "app"},
                                    "data": {"greeting": "hello"}})
        container = {"name": "app", "image": image, "command": SLEEP, "envFrom": [{"secretRef": {"name": "creds"}}],
                     "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}]}
        create(http, "pods", pod_manifest("offline", image, containers=[container],
                                          volumes=[{"name": "cfg", "configMap": {"name": "app"}}]))
        cid = wait_until(lambda: running(http, "offline"), 30, "the pod running")
    old_pid = agent_env.runc_list()[cid][0]
    kill_group(server.process)
    kill_group(agent_env.procs[0], signal.SIGKILL)
    subprocess.run(["runc", "--root", str(agent_env.runc_root), "kill", cid, "KILL"], capture_output=True, timeout=15)
    agent_env.start(token=server.join_token)  # the server is gone: only the agent's cache knows the Secret
    wait_until(lambda: agent_env.runc_list().get(cid, (0, ""))[1] == "running"
               and agent_env.runc_list()[cid][0] != old_pid, 30, "the container restarted offline")
    environ = run_in(agent_env, cid, "cat", "/proc/1/environ")
    assert "TOKEN=cached-token" in environ.split("\0")
    assert run_in(agent_env, cid, "cat", "/etc/app/greeting") == "hello"
