"""Server-side apply: merge a manager's configuration into the live object.

Each field manager's last applied configuration is kept in ``metadata.managedFields``. A
re-apply changes only the fields whose applied value changed since that manager's last apply,
prunes the fields it stopped declaring, and leaves alone what another manager (a scaler,
``shoal scale``) set in between — so a re-apply does not undo a scale. Lists are atomic.
Pure: dicts in, dict out.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

_MISSING = object()
_SERVER_OWNED = {("metadata", k) for k in ("resourceVersion", "uid", "managedFields", "creationTimestamp",
                                           "generation", "deletionTimestamp")}
Path = tuple[str, ...]


def leaves(doc: Any, prefix: Path = ()) -> Iterator[tuple[Path, Any]]:
    """Every leaf path of a nested mapping; non-empty dicts recurse, everything else is a leaf."""
    if isinstance(doc, dict) and (doc or not prefix):
        for key, value in doc.items():
            path = (*prefix, str(key))
            if path[:2] in _SERVER_OWNED or path[:1] == ("status",):
                continue
            yield from leaves(value, path)
    else:
        yield prefix, doc


def _set(doc: dict[str, Any], path: Path, value: Any) -> None:
    for key in path[:-1]:
        child = doc.get(key)
        if not isinstance(child, dict):
            child = {}
            doc[key] = child
        doc = child
    doc[path[-1]] = copy.deepcopy(value)


def _delete(doc: dict[str, Any], path: Path) -> None:
    for key in path[:-1]:
        child = doc.get(key)
        if not isinstance(child, dict):
            return
        doc = child
    doc.pop(path[-1], None)


def _get(doc: Any, path: Path) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return _MISSING
        doc = doc[key]
    return doc


def _entries(live: dict[str, Any]) -> list[dict[str, Any]]:
    entries = live.get("metadata", {}).get("managedFields", [])
    return [dict(e) for e in entries if isinstance(e, dict)]


def _owned(entry: dict[str, Any]) -> set[Path]:
    return {tuple(path) for path in entry.get("owned", [])}


def _release(entries: list[dict[str, Any]], paths: set[Path]) -> None:
    """Take ``paths`` away from every entry in ``entries``."""
    for entry in entries:
        entry["owned"] = [list(p) for p in sorted(_owned(entry) - paths)]


def merge_apply(live: dict[str, Any] | None, config: dict[str, Any], manager: str, now: str) -> dict[str, Any]:
    """The object that results from ``manager`` applying ``config`` over ``live``."""
    result: dict[str, Any] = copy.deepcopy(live) if live else {}
    entries = _entries(result)
    mine_before = next((e for e in entries if e.get("manager") == manager), {})
    previous: dict[str, Any] = mine_before.get("applied", {})
    owned_before = _owned(mine_before)
    others = [e for e in entries if e.get("manager") != manager]
    other_paths = set().union(*(_owned(e) for e in others)) if others else set()
    new_leaves = dict(leaves(config))
    old_leaves = dict(leaves(previous))
    owned: set[Path] = set()
    for path, value in new_leaves.items():
        if path in other_paths and old_leaves.get(path, _MISSING) == value:
            continue  # another manager changed it since; our value did not change: theirs stands
        _set(result, path, value)
        owned.add(path)
    _release(others, owned)
    for path in (old_leaves.keys() - new_leaves.keys()) & owned_before:
        _delete(result, path)
    applied = copy.deepcopy(config)
    applied.pop("status", None)
    for key in ("resourceVersion", "uid", "managedFields", "creationTimestamp", "generation"):
        applied.get("metadata", {}).pop(key, None)
    mine = {"manager": manager, "operation": "Apply", "time": now, "applied": applied,
            "owned": [list(p) for p in sorted(owned)]}
    kept = [e for e in others if e.get("owned")]
    result.setdefault("metadata", {})["managedFields"] = [*kept, mine]
    for key in ("apiVersion", "kind"):
        if key in config:
            result[key] = config[key]
    return result


def record_update(live: dict[str, Any], manager: str, fields: dict[str, Any], now: str) -> dict[str, Any]:
    """Record that ``manager`` set ``fields`` (e.g. ``{"spec": {"replicas": 5}}``) by an update,
    taking ownership of those paths from every other manager (whose last-applied values stay)."""
    result = copy.deepcopy(live)
    paths = {path for path, _ in leaves(fields)}
    entries = _entries(result)
    _release([e for e in entries if e.get("manager") != manager], paths)
    current = next((e for e in entries if e.get("manager") == manager), None)
    if current is None:
        current = {"manager": manager, "operation": "Update", "applied": {}}
        entries.append(current)
    for path, value in leaves(fields):
        _set(current.setdefault("applied", {}), path, value)
    current["owned"] = [list(p) for p in sorted(_owned(current) | paths)]
    current["time"] = now
    result.setdefault("metadata", {})["managedFields"] = [e for e in entries if e.get("owned")]
    return result


def same_content(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal apart from managed-field timestamps and the resourceVersion."""
    def strip(doc: dict[str, Any]) -> dict[str, Any]:
        doc = copy.deepcopy(doc)
        meta = doc.get("metadata", {})
        meta.pop("resourceVersion", None)
        for entry in meta.get("managedFields", []):
            entry.pop("time", None)
        meta["managedFields"] = sorted(meta.get("managedFields", []), key=lambda e: str(e.get("manager")))
        return doc
    return strip(a) == strip(b)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result
