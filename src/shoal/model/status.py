"""The Status object every API error is returned as (Kubernetes' shape)."""

from __future__ import annotations

import msgspec

from shoal.model.base import Spec


class StatusCause(Spec, frozen=True, kw_only=True):
    field: str = ""
    message: str = ""
    reason: str = ""


class StatusDetails(Spec, frozen=True, kw_only=True):
    name: str = ""
    kind: str = ""
    causes: list[StatusCause] = msgspec.field(default_factory=list)
    retry_after_seconds: int = 0


class Status(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    kind: str = "Status"
    api_version: str = "shoal/v1"
    status: str = "Failure"
    message: str = ""
    reason: str = ""
    code: int = 500
    details: StatusDetails = msgspec.field(default_factory=StatusDetails)
