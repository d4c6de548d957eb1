"""API errors as Kubernetes-style Status objects.

Every failure leaves the server as a Status with code, reason, message and field causes;
this module owns the mapping from store errors, validation errors and framework errors.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException

from shoal.model import FieldError, Status, StatusCause, StatusDetails, ValidationError
from shoal.store.protocol import StoreError

log = logging.getLogger("shoal.api")

_REASONS = {400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
            405: "MethodNotAllowed", 409: "Conflict", 410: "Expired", 413: "RequestEntityTooLarge",
            415: "UnsupportedMediaType", 422: "Invalid", 429: "TooManyRequests", 500: "InternalError",
            503: "ServiceUnavailable"}
STATUS_MEDIA_TYPE = "application/json"
_encode = msgspec.json.Encoder().encode


class ApiError(Exception):
    """An error the API returns as a Status."""

    def __init__(self, code: int, message: str, *, reason: str = "", kind: str = "", name: str = "",
                 causes: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.kind = kind
        self.name = name
        self.causes = causes or []

    def status(self) -> Status:
        causes = [StatusCause(field=c.path, message=c.message, reason="FieldValueInvalid") for c in self.causes]
        return Status(message=self.message, reason=self.reason, code=self.code,
                      details=StatusDetails(name=self.name, kind=self.kind, causes=causes))


def status_response(error: ApiError) -> Response[bytes]:
    return Response(_encode(error.status()), status_code=error.code, media_type=STATUS_MEDIA_TYPE)


def invalid(kind: str, name: str, exc: ValidationError) -> ApiError:
    first = exc.errors[0] if exc.errors else FieldError("", "invalid")
    label = f'{kind} "{name}"' if name else kind
    return ApiError(422, f"{label} is invalid: {first}", kind=kind, name=name, causes=exc.errors)


def from_store(exc: StoreError, kind: str, name: str) -> ApiError:
    messages = {404: f'{kind.lower()} "{name}" not found',
                409: f'{kind.lower()} "{name}" already exists' if exc.reason == "AlreadyExists" else
                f'the object has been modified; read {kind.lower()} "{name}" again and retry',
                410: str(exc) or "the requested resourceVersion is too old; list again"}
    return ApiError(exc.code, messages.get(exc.code, str(exc) or exc.reason), reason=exc.reason, kind=kind,
                    name=name)


def handle_api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[bytes]:
    return status_response(exc)


def handle_http_exception(_: Request[Any, Any, Any], exc: HTTPException) -> Response[bytes]:
    code = exc.status_code
    message = {404: "the server could not find the requested resource",
               405: "the method is not allowed on this resource"}.get(code, str(exc.detail))
    return status_response(ApiError(code, message))


def handle_store_error(_: Request[Any, Any, Any], exc: StoreError) -> Response[bytes]:
    return status_response(ApiError(exc.code, str(exc) or exc.reason, reason=exc.reason))


def handle_unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return status_response(ApiError(500, "internal error; see the server log"))
