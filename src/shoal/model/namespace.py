"""The Namespace kind: a scope for names; ``default`` always exists."""

from __future__ import annotations

import msgspec

from shoal.model.base import API_VERSION, Object, Spec
from shoal.model.meta import ObjectMeta

DEFAULT_NAMESPACE = "default"


class NamespaceSpec(Spec, frozen=True, kw_only=True):
    allow_host_path: bool = False
    allow_privileged: bool = False


class NamespaceStatus(Spec, frozen=True, kw_only=True):
    phase: str = "Active"


class Namespace(Object, frozen=True, kw_only=True, tag="Namespace"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    spec: NamespaceSpec = msgspec.field(default_factory=NamespaceSpec)
    status: NamespaceStatus = msgspec.field(default_factory=NamespaceStatus)
