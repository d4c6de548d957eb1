"""Field selectors on lists (``spec.nodeName=gw-1,status.phase!=Running``).

Only the fields listed in ``SUPPORTED`` can be selected on; anything else is a 400 that names
the supported fields.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shoal.api.errors import ApiError
from shoal.model import Object


def _attr(obj: Any, *names: str) -> str:
    for name in names:
        obj = getattr(obj, name, None)
        if obj is None:
            return ""
    return str(obj)


SUPPORTED: dict[str, Callable[[Object], str]] = {
    "metadata.name": lambda o: _attr(o, "metadata", "name"),
    "metadata.namespace": lambda o: _attr(o, "metadata", "namespace"),
    "spec.nodeName": lambda o: _attr(o, "spec", "node_name"),
    "status.phase": lambda o: _attr(o, "status", "phase"),
    "involvedObject.kind": lambda o: _attr(o, "involved_object", "kind"),
    "involvedObject.name": lambda o: _attr(o, "involved_object", "name"),
    "involvedObject.namespace": lambda o: _attr(o, "involved_object", "namespace"),
    "involvedObject.uid": lambda o: _attr(o, "involved_object", "uid"),
}


@dataclass(frozen=True, slots=True)
class FieldSelector:
    terms: tuple[tuple[Callable[[Object], str], bool, str], ...]

    def matches(self, obj: Object) -> bool:
        return all((getter(obj) == value) == equal for getter, equal, value in self.terms)


def parse_field_selector(text: str) -> FieldSelector | None:
    if not text:
        return None
    terms = []
    for term in text.split(","):
        if "!=" in term:
            field, value = term.split("!=", 1)
            equal = False
        elif "=" in term:
            field, value = term.split("==", 1) if "==" in term else term.split("=", 1)
            equal = True
        else:
            raise ApiError(400, f'cannot parse field selector "{term}"; use field=value or field!=value')
        getter = SUPPORTED.get(field.strip())
        if getter is None:
            raise ApiError(400, f'field "{field.strip()}" cannot be selected on; supported: '
                                f"{', '.join(SUPPORTED)}")
        terms.append((getter, equal, value.strip()))
    return FieldSelector(tuple(terms))
