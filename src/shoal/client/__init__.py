"""The shoal API client used by the CLI, agents, simulators and tests.

``Client`` (blocking) and ``AsyncClient`` speak the REST contract of docs/api.md over httpx with
the CA and token from a ``ClientConfig``. Objects travel as plain dicts; ``to_model`` turns one
into a model Struct. This package must not import the server side (store, api, controllers).
"""

from __future__ import annotations

from typing import Any

from shoal.client.aio import AsyncClient
from shoal.client.config import ClientConfig, load_config, resolve_path
from shoal.client.errors import ApiError, Cause, ClientError, ConfigError, ServerUnreachable
from shoal.client.sync import Client
from shoal.model import Object, decode_object, to_builtins


def to_model(obj: dict[str, Any]) -> Object:
    """A dict from the server as a model Struct (shape-checked, semantic checks skipped)."""
    return decode_object(obj, check=False)


def to_dict(obj: Object) -> dict[str, Any]:
    """A model Struct as the dict the client sends."""
    return to_builtins(obj)


__all__ = [
    "ApiError", "AsyncClient", "Cause", "Client", "ClientConfig", "ClientError", "ConfigError",
    "ServerUnreachable", "load_config", "resolve_path", "to_dict", "to_model",
]
