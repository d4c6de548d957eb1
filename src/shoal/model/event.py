"""The Event kind: what happened to an object, with a reason and a count."""

from __future__ import annotations

import msgspec

from shoal.model.base import API_VERSION, Object
from shoal.model.meta import ObjectMeta, ObjectReference


class Event(Object, frozen=True, kw_only=True, tag="Event"):
    api_version: str = API_VERSION
    metadata: ObjectMeta = msgspec.field(default_factory=ObjectMeta)
    involved_object: ObjectReference = msgspec.field(default_factory=ObjectReference)
    reason: str = ""
    message: str = ""
    type: str = "Normal"  # Normal | Warning
    count: int = 1
    source: str = ""
    first_timestamp: str = ""
    last_timestamp: str = ""
