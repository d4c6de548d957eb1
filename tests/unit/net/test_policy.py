"""Policy table compilation: NetworkPolicies + pods + namespaces → per-pod allow rules → one nft
script. Unselected pods get no rules; selected ones admit only the union of their policies' peers
and ports (pod and namespace labels, ipBlock minus except, numbered, ranged and named ports)."""

from __future__ import annotations

from typing import Any

from shoal.model import Namespace, NetworkPolicy, ObjectMeta, Pod, decode_object
from shoal.net.policy import Match, PodRules, compile_policies, render

NODE = "edge-1"


def pod(name: str, ip: str, labels: dict[str, str], *, ns: str = "default", node: str = NODE,
        ports: dict[str, int] | None = None, phase: str = "Running") -> Pod:
    obj = decode_object({"kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": labels},
                         "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox", "ports": [
                             {"name": n, "containerPort": p} for n, p in (ports or {}).items()]}]},
                         "status": {"phase": phase, "podIP": ip}}, check=False)
    assert isinstance(obj, Pod)
    return obj


def policy(spec: dict[str, Any], name: str = "p", ns: str = "default") -> NetworkPolicy:
    obj = decode_object({"kind": "NetworkPolicy", "metadata": {"name": name, "namespace": ns}, "spec": spec})
    assert isinstance(obj, NetworkPolicy)
    return obj


def namespace(name: str, labels: dict[str, str]) -> Namespace:
    return Namespace(metadata=ObjectMeta(name=name, labels=labels))


WEB = pod("web", "10.77.0.2", {"app": "web"}, ports={"http": 8080})
CLIENT = pod("client", "10.77.0.3", {"app": "client"})
OTHER = pod("other", "10.77.0.4", {"app": "other"})
REMOTE_CLIENT = pod("client-2", "10.77.1.5", {"app": "client"}, node="edge-2")
PODS = [WEB, CLIENT, OTHER, REMOTE_CLIENT]
ALLOW_CLIENT = {"podSelector": {"matchLabels": {"app": "web"}},
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}}}], "ports": [{"port": 8080}]}]}


def rules_of(policies: list[NetworkPolicy], pods: list[Pod] = PODS, namespaces: list[Namespace] | None = None,
             ) -> dict[tuple[str, str], tuple[Match, ...]]:
    rules, problems = compile_policies(policies, pods, namespaces or [], NODE)
    assert problems == []
    return {(r.key, r.direction): r.matches for r in rules}


def test_no_policy_means_no_rules_and_unselected_pods_stay_open() -> None:
    assert rules_of([]) == {}
    rules = rules_of([policy(ALLOW_CLIENT)])
    assert set(rules) == {("default/web", "ingress")}  # client and other are selected by nothing


def test_allow_app_client_admits_only_client_ips_on_the_port() -> None:
    rules = rules_of([policy(ALLOW_CLIENT)])
    assert rules[("default/web", "ingress")] == (Match(("10.77.0.3", "10.77.1.5"), (), "tcp", ("8080",)),)
    script = render(*compile_policies([policy(ALLOW_CLIENT)], PODS, [], NODE)[:1])
    chain = [line for line in script.splitlines() if " in-default/web " in line]
    assert chain == ["add rule ip shoal-policy in-default/web ip saddr { 10.77.0.3, 10.77.1.5 } "
                     "meta l4proto tcp th dport 8080 return",
                     "add rule ip shoal-policy in-default/web drop",
                     "add element ip shoal-policy ingress { 10.77.0.2 : jump in-default/web }"]
    assert "10.77.0.4" not in script


def test_remote_pods_are_peers_but_get_no_chain_here() -> None:
    remote_web = pod("web-2", "10.77.1.9", {"app": "web"}, node="edge-2")
    rules = rules_of([policy(ALLOW_CLIENT)], [*PODS, remote_web])
    assert ("default/web-2", "ingress") not in rules


def test_empty_ingress_denies_all_and_empty_from_allows_all() -> None:
    deny = rules_of([policy({"podSelector": {"matchLabels": {"app": "web"}}})])
    assert deny[("default/web", "ingress")] == ()
    script = render(compile_policies([policy({"podSelector": {}})], PODS, [], NODE)[0])
    assert "add rule ip shoal-policy in-default/web drop" in script
    allow_all = rules_of([policy({"podSelector": {}, "ingress": [{}]})])
    assert allow_all[("default/web", "ingress")] == (Match(),)


def test_policies_add_up_and_only_apply_in_their_namespace() -> None:
    second = policy({"podSelector": {"matchLabels": {"app": "web"}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "other"}}}]}]}, name="q")
    elsewhere = policy({"podSelector": {}}, ns="prod")
    rules = rules_of([policy(ALLOW_CLIENT), second, elsewhere])
    assert rules[("default/web", "ingress")] == (Match(("10.77.0.3", "10.77.1.5"), (), "tcp", ("8080",)),
                                                 Match(("10.77.0.4",)))


def test_namespace_selector_picks_pods_of_labelled_namespaces() -> None:
    monitor = pod("prom", "10.77.0.9", {"app": "prom"}, ns="monitoring")
    dev = pod("prom", "10.77.0.10", {"app": "prom"}, ns="dev")
    namespaces = [namespace("monitoring", {"team": "ops"}), namespace("dev", {"team": "dev"})]
    by_label = policy({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "ops"}},
                                                                  "podSelector": {"matchLabels": {"app": "prom"}}}]}]})
    rules = rules_of([by_label], [WEB, monitor, dev], namespaces)
    assert rules[("default/web", "ingress")] == (Match(("10.77.0.9",)),)
    by_name = policy({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
        "matchLabels": {"kubernetes.io/metadata.name": "dev"}}}]}]})
    assert rules_of([by_name], [WEB, monitor, dev], namespaces)[("default/web", "ingress")] == (Match(("10.77.0.10",)),)
    pod_only = policy({"podSelector": {}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "prom"}}}]}]})
    assert rules_of([pod_only], [WEB, monitor, dev], namespaces)[("default/web", "ingress")] == ()  # own ns only


def test_ports_ranges_protocols_and_named_ports() -> None:
    ports = policy({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [
        {"port": "http"}, {"port": 9000, "endPort": 9010}, {"protocol": "UDP", "port": 53}, {"protocol": "SCTP"},
        {"port": "metrics"}]}]})  # the pod has no port named "metrics": it adds nothing
    assert rules_of([ports])[("default/web", "ingress")] == (
        Match(None, (), "sctp", ()), Match(None, (), "tcp", ("8080", "9000-9010")), Match(None, (), "udp", ("53",)))
    script = render(compile_policies([ports], PODS, [], NODE)[0])
    assert "in-default/web meta l4proto tcp th dport { 8080, 9000-9010 } return" in script
    assert "in-default/web meta l4proto sctp return" in script
    unresolved = policy({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"ports": [{"port": "grpc"}]}]})
    assert rules_of([unresolved])[("default/web", "ingress")] == ()


def test_egress_filters_the_source_and_resolves_named_ports_at_the_destination() -> None:
    egress = policy({"podSelector": {"matchLabels": {"app": "client"}}, "policyTypes": ["Egress"], "egress": [
        {"to": [{"podSelector": {"matchLabels": {"app": "web"}}}], "ports": [{"port": "http"}]},
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]})
    rules = rules_of([egress])
    assert set(rules) == {("default/client", "egress")}  # remote client-2 gets its chain on its own node
    assert rules[("default/client", "egress")] == (Match(targets=(("10.77.0.2", "tcp", 8080),)),
                                                   Match(None, (), "tcp", ("53",)), Match(None, (), "udp", ("53",)))
    script = render(compile_policies([egress], PODS, [], NODE)[0])
    assert ("add rule ip shoal-policy eg-default/client ip daddr . meta l4proto . th dport "
            "{ 10.77.0.2 . tcp . 8080 } return") in script
    assert "add element ip shoal-policy egress { 10.77.0.3 : jump eg-default/client }" in script
    assert "ip saddr vmap @egress" in script


def test_ip_block_with_except() -> None:
    block = policy({"podSelector": {"matchLabels": {"app": "web"}}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "192.0.2.7/24", "except": ["192.0.2.128/25", "192.0.2.1/32"]}}]}]})
    rules = rules_of([block])
    assert rules[("default/web", "ingress")] == (Match(("192.0.2.0/24",), ("192.0.2.128/25", "192.0.2.1/32")),)
    line = "add rule ip shoal-policy in-default/web ip saddr 192.0.2.0/24 ip saddr != { 192.0.2.128/25, 192.0.2.1/32 }"
    assert line + " return" in render(compile_policies([block], PODS, [], NODE)[0])


def test_ipv6_blocks_and_pods_without_ips_are_reported_or_skipped() -> None:
    v6 = policy({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "2001:db8::/32"}}]}]})
    pending = pod("new", "", {"app": "client"})
    done = pod("old", "10.77.0.8", {"app": "web"}, phase="Succeeded")
    rules, problems = compile_policies([v6], [WEB, pending, done], [], NODE)
    assert [r.key for r in rules] == ["default/web"] and rules[0].matches == ()
    assert problems == ["NetworkPolicy default/p: spec.ingress[0].from[0].ipBlock: 2001:db8::/32 is IPv6; only IPv4 "
                        "is filtered, so it admits nothing"]


def test_render_replaces_the_whole_table_in_one_script() -> None:
    script = render([PodRules("default/a", "10.77.0.2", "ingress", ())], table="t")
    assert script.splitlines()[:3] == ["add table ip t", "delete table ip t", "add table ip t"]
    assert "add rule ip t forward ct state established,related accept" in script
    assert render([PodRules("default/a", "10.77.0.2", "ingress", ())], table="t") == script
    long_name = PodRules("default/" + "x" * 250, "10.77.0.2", "ingress", ())
    assert "add chain ip t h-" in render([long_name], table="t")  # over nft's name limit: hashed
