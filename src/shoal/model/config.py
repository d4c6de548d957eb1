"""ConfigMap and Secret: configuration handed to pods as env or files.

Secret ``data`` values are base64 as in Kubernetes; ``stringData`` is accepted on write and
folded into ``data`` by the API. Encryption at rest is the store's business, not the model's.
"""

from __future__ import annotations

import msgspec

from shoal.model.base import API_VERSION, Object
from shoal.model.meta import ObjectMeta


class ConfigMap(Object, frozen=True, kw_only=True, tag="ConfigMap"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    data: dict[str, str] = msgspec.field(default_factory=dict)
    binary_data: dict[str, str] = msgspec.field(default_factory=dict)


class Secret(Object, frozen=True, kw_only=True, tag="Secret"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    type: str = "Opaque"
    data: dict[str, str] = msgspec.field(default_factory=dict)
    string_data: dict[str, str] = msgspec.field(default_factory=dict)
