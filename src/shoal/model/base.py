"""Base Struct configurations shared by every resource kind.

Owns the msgspec settings (frozen, camelCase wire names, unknown fields rejected) so that
every kind decodes and encodes the same way. It must not know about any particular kind.
"""

from __future__ import annotations

import msgspec

API_VERSION = "shoal/v1"


class Spec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True,
           rename="camel"):
    """A nested part of a resource: camelCase on the wire, defaults omitted, unknown fields refused."""


class Object(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, rename="camel",
             tag_field="kind"):
    """A top-level resource. Subclasses set ``tag=KindName`` and define metadata/spec/status."""
