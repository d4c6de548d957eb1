"""Who may do what: the admin token may do everything; a node's token (subject ``node:NAME``) may
read what an agent needs, and write only its own Node, the status of pods bound to it, and Events.

Pure decisions over (subject, method, resource); the routes call them before acting, and the
object-level checks (a pod's node, a created Node's name) once the object is known.
"""

from __future__ import annotations

from collections.abc import Sequence

from shoal.api.errors import ApiError

NODE_PREFIX = "node:"
NODE_READABLE = frozenset({"pods", "nodes", "services", "endpoints", "configmaps", "secrets", "namespaces",
                           "networkpolicies"})


def node_of(subject: str) -> str | None:
    """The node a subject speaks for, or None for the admin."""
    return subject[len(NODE_PREFIX):] if subject.startswith(NODE_PREFIX) else None


def _forbidden(node: str, what: str) -> ApiError:
    return ApiError(403, f'node "{node}" may not {what}; use the admin config for that', reason="Forbidden")


def authorize(subject: str, method: str, plural: str, name: str | None = None, sub: str | None = None) -> None:
    """Raise 403 unless ``subject`` may ``method`` on ``plural[/name[/sub]]``."""
    node = node_of(subject)
    if node is None:
        return
    if method == "GET" and plural in NODE_READABLE:
        return
    if plural == "nodes" and (name == node or (method == "POST" and name is None)):
        return  # its own Node (a create is checked against the body's name)
    if plural == "pods" and sub == "status" and method == "PUT" and name:
        return  # checked against the pod's node once the pod is read
    if plural == "events" and method == "POST" and name is None:
        return
    target = "/".join(p for p in (plural, name, sub) if p)
    raise _forbidden(node, f"{method} {target}")


def check_node_name(subject: str, name: object) -> None:
    """A node may create only the Node object of its own name."""
    node = node_of(subject)
    if node is not None and name != node:
        raise _forbidden(node, f'create node "{name}"')


def check_pod_node(subject: str, pod_name: str, bound_to: str) -> None:
    """A node may write the status only of pods bound to it."""
    node = node_of(subject)
    if node is not None and bound_to != node:
        raise _forbidden(node, f'write the status of pod "{pod_name}", which is bound to "{bound_to or "no node"}"')


def check_heartbeats(subject: str, nodes: Sequence[str]) -> None:
    node = node_of(subject)
    if node is not None and list(nodes) != [node]:
        raise _forbidden(node, "heartbeat for other nodes")
