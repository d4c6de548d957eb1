"""NetworkPolicy manifests: Kubernetes' shape decodes, policyTypes default as Kubernetes does, and
bad ports, protocols, CIDRs, peers and selectors are refused with the field path and the fix."""

from __future__ import annotations

from typing import Any

import pytest

from shoal.model import NetworkPolicy, PolicyType, ValidationError, decode_object, lookup


def manifest(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "shoal/v1", "kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "default"},
            "spec": spec}


def errors_of(spec: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        decode_object(manifest(spec))
    return [str(e) for e in caught.value.errors]


def test_kubernetes_shape_decodes_and_is_registered() -> None:
    policy = decode_object(manifest({
        "podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "client"}},
                               "namespaceSelector": {"matchLabels": {"team": "a"}}},
                              {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
                     "ports": [{"port": 8080}, {"protocol": "UDP", "port": "dns"}, {"port": 9000, "endPort": 9010}]}],
        "egress": [{"to": [{"namespaceSelector": {}}], "ports": [{"protocol": "SCTP"}]}]}))
    assert isinstance(policy, NetworkPolicy)
    rule = policy.spec.ingress[0]
    assert rule.from_[1].ip_block is not None and rule.from_[1].ip_block.except_ == ["10.1.0.0/16"]
    assert [p.port for p in rule.ports] == [8080, "dns", 9000]
    assert policy.spec.types() == {PolicyType.INGRESS, PolicyType.EGRESS}
    info = lookup("netpol")
    assert (info.kind, info.plural, info.namespaced) == ("NetworkPolicy", "networkpolicies", True)
    assert lookup("networkpolicies") is info


def test_policy_types_default_like_kubernetes() -> None:
    only_ingress = decode_object(manifest({"podSelector": {}}))
    assert isinstance(only_ingress, NetworkPolicy)
    assert only_ingress.spec.types() == {PolicyType.INGRESS}
    explicit = decode_object(manifest({"podSelector": {}, "policyTypes": ["Egress"]}))
    assert isinstance(explicit, NetworkPolicy)
    assert explicit.spec.types() == {PolicyType.EGRESS}


@pytest.mark.parametrize(("spec", "expected"), [
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 70000}]}]},
     "spec.ingress[0].ports[0]: port 70000 is not a port; use 1-65535"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]},
     "spec.ingress[0].ports[0]: port 0 is not a port; use 1-65535"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": "8080"}]}]},
     'spec.ingress[0].ports[0]: port "8080" is a string; write the number without quotes: 8080'),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": "Web_Port"}]}]},
     'spec.ingress[0].ports[0]: port "Web_Port" is not a port name'),
    ({"podSelector": {}, "egress": [{"ports": [{"port": 9000, "endPort": 8000}]}]},
     "spec.egress[0].ports[0]: endPort 8000 must be between port 9000 and 65535"),
    ({"podSelector": {}, "egress": [{"ports": [{"port": "http", "endPort": 8000}]}]},
     "spec.egress[0].ports[0]: endPort needs a numeric port"),
    ({"podSelector": {}, "ingress": [{"ports": [{"protocol": "ICMP"}]}]},
     "spec.ingress[0].ports[0].protocol: invalid value 'ICMP'; allowed values: TCP, UDP, SCTP"),
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0/33"}}]}]},
     'spec.egress[0].to[0].ipBlock: cidr "10.0.0/33" is not a CIDR'),
    ({"podSelector": {}, "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}]},
     'spec.egress[0].to[0].ipBlock: except[0] "11.0.0.0/16" is not inside cidr 10.0.0.0/8'),
    ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}]},
     "spec.ingress[0].from[0]: ipBlock cannot be combined with podSelector or namespaceSelector"),
    ({"podSelector": {}, "ingress": [{"from": [{}]}]},
     "spec.ingress[0].from[0]: give podSelector, namespaceSelector or ipBlock"),
    ({"podSelector": {}, "ingress": [{"from": [{"namespaceSelector": {
        "matchExpressions": [{"key": "team", "operator": "In"}]}}]}]},
     "spec.ingress[0].from[0]: namespaceSelector.matchExpressions[0]: operator In needs at least one value"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["b"]}]}},
     'spec: podSelector: operator "Equals" is not one of In, NotIn, Exists, DoesNotExist'),
    ({"podSelector": {}, "policyTypes": ["Ingres"]},
     "spec.policyTypes[0]: invalid value 'Ingres'; allowed values: Ingress, Egress"),
    ({"podSelector": {}, "policyTypes": ["Ingress", "Ingress"]},
     "spec: policyTypes: list each of Ingress and Egress at most once"),
    ({}, "spec.podSelector: required field is missing"),
    ({"podSelector": {}, "ingress": [{"form": []}]},
     'spec.ingress[0].form: unknown field "form"; did you mean "from"?'),
])
def test_bad_policies_name_the_field_and_the_fix(spec: dict[str, Any], expected: str) -> None:
    errors = errors_of(spec)
    assert len(errors) == 1 and errors[0].startswith(expected), errors
