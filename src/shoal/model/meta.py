"""Object metadata, owner references, conditions and label selectors (Kubernetes' shapes).

Every kind embeds ``ObjectMeta``. Names follow DNS-1123; the rules live in ``validation``.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from shoal.model.base import Spec

DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"
Name = Annotated[str, msgspec.Meta(max_length=253)]


class OwnerReference(Spec, frozen=True, kw_only=True):
    api_version: str = "shoal/v1"
    kind: str
    name: str
    uid: str
    controller: bool = False
    block_owner_deletion: bool = False


class ManagedFieldsEntry(Spec, frozen=True, kw_only=True):
    """What one field manager last applied (``applied``) and the leaf paths it owns now (``owned``)."""

    manager: str
    operation: str = "Apply"
    time: str = ""
    applied: dict[str, Any] = msgspec.field(default_factory=dict)
    owned: list[list[str]] = msgspec.field(default_factory=list)


class ObjectMeta(Spec, frozen=True, kw_only=True):
    name: Name = ""
    generate_name: str = ""
    namespace: str = ""
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    annotations: dict[str, str] = msgspec.field(default_factory=dict)
    uid: str = ""
    resource_version: str = ""
    generation: int = 0
    creation_timestamp: str = ""
    deletion_timestamp: str = ""
    owner_references: list[OwnerReference] = msgspec.field(default_factory=list)
    finalizers: list[str] = msgspec.field(default_factory=list)
    managed_fields: list[ManagedFieldsEntry] = msgspec.field(default_factory=list)


class Condition(Spec, frozen=True, kw_only=True):
    type: str
    status: str = "Unknown"  # "True" | "False" | "Unknown"
    reason: str = ""
    message: str = ""
    last_transition_time: str = ""
    last_heartbeat_time: str = ""


class LabelSelectorRequirement(Spec, frozen=True, kw_only=True):
    key: str
    operator: str  # In | NotIn | Exists | DoesNotExist
    values: list[str] = msgspec.field(default_factory=list)


class LabelSelector(Spec, frozen=True, kw_only=True):
    match_labels: dict[str, str] = msgspec.field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = msgspec.field(default_factory=list)


class ObjectReference(Spec, frozen=True, kw_only=True):
    kind: str = ""
    namespace: str = ""
    name: str = ""
    uid: str = ""
    api_version: str = ""
    resource_version: str = ""
    field_path: str = ""


def condition(conditions: list[Condition], kind: str) -> Condition | None:
    """The condition of ``kind`` in ``conditions``, if present."""
    for item in conditions:
        if item.type == kind:
            return item
    return None


def set_condition(conditions: list[Condition], new: Condition) -> list[Condition]:
    """A copy of ``conditions`` with ``new`` replacing the one of its type.

    The transition time is kept when the status does not change, as Kubernetes does.
    """
    out: list[Condition] = []
    replaced = False
    for item in conditions:
        if item.type == new.type:
            if item.status == new.status and item.last_transition_time:
                new = msgspec.structs.replace(new, last_transition_time=item.last_transition_time)
            out.append(new)
            replaced = True
        else:
            out.append(item)
    if not replaced:
        out.append(new)
    return out
