"""Node tokens may read what an agent needs and write only their own things."""

from __future__ import annotations

import pytest

from shoal.api.authz import authorize, check_heartbeats, check_node_name, check_pod_node
from shoal.api.errors import ApiError

NODE = "node:gw-1"


@pytest.mark.parametrize(("method", "plural", "name", "sub"), [
    ("GET", "pods", None, None), ("GET", "services", None, None), ("GET", "endpoints", "web", None),
    ("GET", "nodes", "gw-2", None), ("POST", "nodes", None, None), ("PUT", "nodes", "gw-1", "status"),
    ("PATCH", "nodes", "gw-1", None), ("POST", "nodes", "gw-1", "heartbeat"), ("PUT", "pods", "p", "status"),
    ("POST", "events", None, None),
])
def test_what_a_node_may_do(method: str, plural: str, name: str | None, sub: str | None) -> None:
    authorize(NODE, method, plural, name, sub)


@pytest.mark.parametrize(("method", "plural", "name", "sub"), [
    ("DELETE", "pods", "p", None), ("POST", "pods", None, None), ("PUT", "pods", "p", None),
    ("PATCH", "nodes", "gw-2", None), ("PUT", "nodes", "gw-2", "status"), ("DELETE", "nodes", "gw-2", None),
    ("POST", "deployments", None, None), ("GET", "deployments", None, None), ("PUT", "deployments", "web", "scale"),
    ("POST", "nodes", "gw-2", "heartbeat"), ("POST", "namespaces", None, None),
])
def test_what_a_node_may_not_do(method: str, plural: str, name: str | None, sub: str | None) -> None:
    with pytest.raises(ApiError) as err:
        authorize(NODE, method, plural, name, sub)
    assert err.value.code == 403 and 'node "gw-1" may not' in err.value.message


def test_the_admin_may_do_anything() -> None:
    authorize("admin", "DELETE", "nodes", "gw-1")


def test_object_level_checks() -> None:
    check_node_name(NODE, "gw-1")
    check_pod_node(NODE, "p", "gw-1")
    check_heartbeats(NODE, ["gw-1"])
    for call in (lambda: check_node_name(NODE, "gw-2"), lambda: check_pod_node(NODE, "p", "gw-2"),
                 lambda: check_heartbeats(NODE, ["gw-1", "gw-2"])):
        with pytest.raises(ApiError):
            call()
