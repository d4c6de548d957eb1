"""NetworkPolicy enforcement with a real server, a real agent with pod networking in a network namespace
of the test's own, real runc pods and real nftables: a policy that admits only ``app=client`` to web's
port 8080 keeps client connecting and times other out; deleting it opens web again. The agent enforces it
(its NodePolicies, table ``ip shoal-policy`` in the agent's namespace): nothing in the test process does."""

from __future__ import annotations

from pathlib import Path

import httpx
from agentenv import AgentEnv, Server, wait_until
from netenv import in_netns
from test_net_runc import delete_all, pod, running_ip, start_node, uid_of, wget

from shoal.net.policy import FAMILY, TABLE

NODE = "edge-1"
IDLE = "trap 'exit 0' TERM; while true; do sleep 1; done"
POLICY = {"apiVersion": "shoal/v1", "kind": "NetworkPolicy", "metadata": {"name": "web-from-client"},
          "spec": {"podSelector": {"matchLabels": {"app": "web"}}, "policyTypes": ["Ingress"],
                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}],
                                "ports": [{"protocol": "TCP", "port": 8080}]}]}}
POLICIES = "/api/v1/namespaces/default/networkpolicies"


def table_listing(netns: Path) -> str:
    done = in_netns(netns, "nft", "list", "table", FAMILY, TABLE)
    return done.stdout if done.returncode == 0 else ""


def reaches(env: AgentEnv, http: httpx.Client, source: str, ip: str) -> bool:
    return wget(env, uid_of(http, source), f"http://{ip}:8080/").stdout.strip() == "web"


def test_policy_allowing_only_app_client_blocks_another_pod(net_env: AgentEnv, server: Server, image: str) -> None:
    assert net_env.netns is not None
    netns = net_env.netns
    with server.http() as http:
        start_node(net_env, server, http)
        manifests = [pod("web", image, {"app": "web"}), pod("client", image, {"app": "client"}, IDLE),
                     pod("other", image, {"app": "other"}, IDLE)]
        for manifest in manifests:
            assert http.post("/api/v1/namespaces/default/pods", json=manifest).status_code == 201
        ips = {m["metadata"]["name"]: wait_until(lambda n=m["metadata"]["name"]: running_ip(http, n), 60,
                                                 f"pod {m['metadata']['name']} Running") for m in manifests}
        web = ips["web"]
        for source in ("client", "other"):  # no policy: everybody reaches web, and there is no table
            wait_until(lambda s=source: reaches(net_env, http, s, web), 15, f"{source} → web without a policy")
        assert table_listing(netns) == ""

        bad = {**POLICY, "spec": {**POLICY["spec"], "ingress": [{"ports": [{"port": 70000}]}]}}
        refused = http.post(POLICIES, json=bad)
        assert refused.status_code == 422, refused.text
        assert "spec.ingress[0].ports[0]: port 70000 is not a port; use 1-65535" in refused.text

        assert http.post(POLICIES, json=POLICY).status_code == 201
        listed = server.cli("get", "netpol")
        assert listed.returncode == 0 and "web-from-client" in listed.stdout, listed
        wait_until(lambda: f"{web} : jump in-default/web" in table_listing(netns), 10, "web's ingress chain")
        assert reaches(net_env, http, "client", web), "client must still reach web"
        blocked = wget(net_env, uid_of(http, "other"), f"http://{web}:8080/")
        assert blocked.returncode != 0 and "web" not in blocked.stdout, blocked
        assert ips["client"] in table_listing(netns) and ips["other"] not in table_listing(netns)

        assert http.delete(f"{POLICIES}/web-from-client").status_code == 200
        wait_until(lambda: table_listing(netns) == "", 10, "the policy table gone with the last policy")
        wait_until(lambda: reaches(net_env, http, "other", web), 15, "other → web once the policy is deleted")
        delete_all(net_env, http, ["web", "client", "other"])
