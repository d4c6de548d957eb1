"""Decoding user input into model objects with errors a person can act on.

msgspec does the structural work (types, unknown fields, required fields); this module turns
its messages into ``FieldError``s with dotted paths and "did you mean" hints, then runs the
semantic checks of ``validation``.
"""

from __future__ import annotations

import difflib
import re
import typing
from typing import Any

import msgspec

from shoal.model.base import API_VERSION, Object
from shoal.model.errors import FieldError, ValidationError
from shoal.model.registry import KindInfo, lookup
from shoal.model.validation import validate

_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_EXPECTED = re.compile(r"Expected `(?P<want>[^`]+)`, got `(?P<got>[^`]+)`")
_ENUM = re.compile(r"Invalid enum value (?P<value>.+)")


def _wire_fields(cls: type[Any]) -> dict[str, Any]:
    """Wire name → annotated type of a Struct's fields."""
    info = msgspec.inspect.type_info(cls)
    if not isinstance(info, msgspec.inspect.StructType):
        return {}
    return {f.encode_name: f.type for f in info.fields}


def _struct_at(cls: type[Any], path: str) -> msgspec.inspect.Type | None:
    """The inspected type found by walking ``path`` (``.spec.containers[0]``) from ``cls``."""
    current: msgspec.inspect.Type = msgspec.inspect.type_info(cls)
    for token in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        name, index = token
        current = _unwrap(current)
        if name and isinstance(current, msgspec.inspect.StructType):
            match = [f.type for f in current.fields if f.encode_name == name]
            if not match:
                return None
            current = match[0]
        elif index and isinstance(current, msgspec.inspect.ListType):
            current = current.item_type
        elif name and isinstance(current, msgspec.inspect.DictType):
            current = current.value_type
        else:
            return None
    return _unwrap(current)


def _unwrap(t: msgspec.inspect.Type) -> msgspec.inspect.Type:
    if isinstance(t, msgspec.inspect.UnionType):
        inner = [x for x in t.types if not isinstance(x, msgspec.inspect.NoneType)]
        if len(inner) == 1:
            return inner[0]
    return t


def _dotted(path: str) -> str:
    return path.lstrip(".")


def _join(path: str, field: str) -> str:
    return f"{_dotted(path)}.{field}" if path else field


def translate(exc: msgspec.ValidationError, cls: type[Any], prefix: str = "") -> FieldError:
    """Turn a msgspec validation message into a FieldError with a dotted path and a hint."""
    match = _AT.match(str(exc))
    message = match.group("msg") if match else str(exc)
    path = (match.group("path") if match else "") or ""

    def full(p: str) -> str:
        return f"{prefix}.{p}" if prefix and p else (prefix or p)

    if unknown := _UNKNOWN.match(message):
        field = unknown.group("field")
        struct = _struct_at(cls, path)
        hint = ""
        if isinstance(struct, msgspec.inspect.StructType):
            names = [f.encode_name for f in struct.fields]
            close = difflib.get_close_matches(field, names, n=1, cutoff=0.6)
            lowered = [n for n in names if n.lower() == field.lower().replace("_", "")]
            if lowered or close:
                hint = f'; did you mean "{(lowered or close)[0]}"?'
            else:
                hint = f"; known fields here: {', '.join(names)}"
        return FieldError(full(_join(path, field)), f'unknown field "{field}"{hint}')
    if missing := _MISSING.match(message):
        return FieldError(full(_join(path, missing.group("field"))), "required field is missing")
    if expected := _EXPECTED.match(message):
        return FieldError(full(_dotted(path)),
                          f"expected {expected.group('want')}, got {expected.group('got')}")
    if enum := _ENUM.match(message):
        struct = _struct_at(cls, path)
        allowed = ""
        if isinstance(struct, msgspec.inspect.EnumType):
            allowed = "; allowed values: " + ", ".join(str(m.value) for m in struct.cls)
        elif isinstance(struct, msgspec.inspect.LiteralType):
            allowed = "; allowed values: " + ", ".join(str(v) for v in struct.values)
        return FieldError(full(_dotted(path)), f"invalid value {enum.group('value')}{allowed}")
    return FieldError(full(_dotted(path)), message)


def _kind_of(data: dict[str, Any], expected: KindInfo | None) -> KindInfo:
    kind = data.get("kind")
    if kind is None:
        if expected is not None:
            return expected
        raise ValidationError([FieldError("kind", "required field is missing; e.g. kind: Deployment")])
    if not isinstance(kind, str):
        raise ValidationError([FieldError("kind", f"expected a string, got {type(kind).__name__}")])
    try:
        info = lookup(kind)
    except LookupError as exc:
        raise ValidationError([FieldError("kind", str(exc))]) from None
    if info.kind != kind:
        raise ValidationError([FieldError("kind", f'"{kind}" is not a kind; did you mean "{info.kind}"?')])
    if expected is not None and info.kind != expected.kind:
        raise ValidationError([FieldError("kind", f'expected {expected.kind}, got "{kind}"')])
    return info


def decode_object(data: Any, expected: KindInfo | None = None, *, check: bool = True) -> Object:
    """Decode a builtin mapping (parsed JSON or YAML) into a validated model object."""
    if not isinstance(data, dict):
        raise ValidationError([FieldError("", f"expected an object, got {type(data).__name__}")])
    info = _kind_of(data, expected)
    api_version = data.get("apiVersion", API_VERSION)
    if api_version != API_VERSION:
        raise ValidationError([FieldError("apiVersion", f'"{api_version}" is not supported; use "{API_VERSION}"')])
    try:
        obj = msgspec.convert(data, type=info.cls, strict=True)
    except msgspec.ValidationError as exc:
        raise ValidationError([translate(exc, info.cls)]) from None
    if check:
        errors = validate(obj)
        if errors:
            raise ValidationError(errors)
    return obj


def decode_json(body: bytes, expected: KindInfo | None = None) -> Object:
    """Decode a JSON request body; a syntax error is reported as a field-less error."""
    try:
        data = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ValidationError([FieldError("", f"request body is not valid JSON: {exc}")]) from None
    return decode_object(data, expected)


def to_builtins(obj: Object) -> dict[str, Any]:
    return typing.cast(dict[str, Any], msgspec.to_builtins(obj))


encode = msgspec.json.Encoder().encode
