"""The errors a shoal client raises: API failures (from Status bodies), an unreachable server, bad config.

Owns turning an HTTP error response into ``ApiError`` with the server's reason, message and field
causes. It must not print anything or decide exit codes; that is the CLI's job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec


class ClientError(Exception):
    """Base of every error raised by ``shoal.client``."""


class ConfigError(ClientError):
    """The client configuration is missing or malformed; the message says where and how to fix it."""


@dataclass(frozen=True, slots=True)
class Cause:
    """One field-level reason in a Status's ``details.causes``."""

    field: str
    message: str
    reason: str = ""

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class ApiError(ClientError):
    """The server answered with an error Status."""

    def __init__(self, status_code: int, reason: str, message: str, causes: list[Cause] | None = None,
                 *, name: str = "", kind: str = "") -> None:
        self.status_code = status_code
        self.reason = reason
        self.message = message
        self.causes = list(causes or [])
        self.name = name
        self.kind = kind
        super().__init__(self.describe())

    def describe(self) -> str:
        """The message followed by one indented line per field cause."""
        lines = [self.message or f"{self.reason or 'Error'} (HTTP {self.status_code})"]
        lines += [f"  {cause}" for cause in self.causes if str(cause) != self.message]
        return "\n".join(lines)

    @property
    def is_server_fault(self) -> bool:
        return self.status_code >= 500

    @classmethod
    def from_status(cls, status_code: int, status: Any) -> ApiError:
        """Build from a decoded Status object (or anything else the server sent)."""
        if not isinstance(status, dict) or status.get("kind") != "Status":
            text = "" if status is None else str(status)
            return cls(status_code, _default_reason(status_code), text[:500] or f"HTTP {status_code}")
        raw_details = status.get("details")
        details: dict[str, Any] = raw_details if isinstance(raw_details, dict) else {}
        causes = [
            Cause(str(c.get("field", "")), str(c.get("message", "")), str(c.get("reason", "")))
            for c in details.get("causes") or [] if isinstance(c, dict)
        ]
        code = status.get("code")
        return cls(code if isinstance(code, int) and code >= 400 else status_code,
                   str(status.get("reason") or _default_reason(status_code)),
                   str(status.get("message") or ""), causes,
                   name=str(details.get("name", "")), kind=str(details.get("kind", "")))

    @classmethod
    def from_body(cls, status_code: int, body: bytes) -> ApiError:
        try:
            decoded: Any = msgspec.json.decode(body) if body else None
        except msgspec.DecodeError:
            decoded = body.decode("utf-8", "replace").strip()
        return cls.from_status(status_code, decoded)


class ServerUnreachable(ClientError):
    """The server could not be reached (connection refused, TLS failure, timeout)."""

    def __init__(self, url: str, problem: str, hint: str) -> None:
        self.url = url
        self.problem = problem
        self.hint = hint
        super().__init__(f"cannot reach the shoal server at {url}: {problem}\n  hint: {hint}")


_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 415: "UnsupportedMediaType",
            422: "Invalid", 429: "TooManyRequests"}


def _default_reason(code: int) -> str:
    return _REASONS.get(code, "InternalError" if code >= 500 else "Error")
