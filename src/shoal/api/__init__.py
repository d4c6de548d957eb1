"""The REST API: Litestar routes for every kind, watches, auth, Status errors, OpenAPI.

Public API: ``create_app`` (the ASGI app with auth in front) and ``build_openapi``.
"""

from shoal.api.openapi import build_openapi
from shoal.api.routes import create_app

__all__ = ["build_openapi", "create_app"]
