"""Reading manifests from files, directories or stdin (multi-document YAML or JSON) and validating
every document locally with the model before anything is sent.

Errors name the file, the document number, the kind and name, the field path and the fix:
``web.yaml (document 1, Deployment "web"):\n  spec.replicas: expected int, got str``. Pure apart
from reading the files it is given; it must not talk to the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from shoal.cli.common import CliError
from shoal.model import KindInfo, Object, ValidationError, decode_object, info_of

_SUFFIXES = (".yaml", ".yml", ".json")
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps timestamps as strings, as the API wants them."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True, slots=True)
class Manifest:
    """One validated document: where it came from, what the user wrote and the decoded object."""

    source: str
    document: int
    data: dict[str, Any]
    obj: Object

    @property
    def info(self) -> KindInfo:
        return info_of(self.obj)

    @property
    def name(self) -> str:
        return str(self.data.get("metadata", {}).get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.data.get("metadata", {}).get("namespace") or "")

    def where(self) -> str:
        return _where(self.source, self.document, self.data)

    def placed(self, namespace: str | None) -> dict[str, Any]:
        """The document with ``metadata.namespace`` filled: -n, else the manifest's, else "default"."""
        data = dict(self.data)
        if not self.info.namespaced:
            return data
        meta = dict(data.get("metadata") or {})
        meta["namespace"] = namespace or self.namespace or "default"
        data["metadata"] = meta
        return data


class ManifestError(CliError):
    """One or more documents are unreadable or invalid; nothing should be sent."""


def _where(source: str, document: int, data: Any) -> str:
    parts = [f"document {document}"]
    if isinstance(data, dict):
        kind = data.get("kind")
        meta = data.get("metadata")
        name = meta.get("name") if isinstance(meta, dict) else None
        if isinstance(kind, str) and kind:
            parts.append(f'{kind} "{name}"' if isinstance(name, str) and name else kind)
    return f"{source} ({', '.join(parts)})"


def read_sources(path: str, stdin: TextIO, *, recursive: bool = False) -> list[tuple[str, str]]:
    """``(label, text)`` for ``path``: a file, every .yaml/.yml/.json file of a directory, or ``-``."""
    if path == "-":
        return [("<stdin>", stdin.read())]
    root = Path(path)
    if root.is_dir():
        pattern = "**/*" if recursive else "*"
        files = sorted(p for p in root.glob(pattern) if p.is_file() and p.suffix in _SUFFIXES)
        if not files:
            raise ManifestError(f"{path}: the directory has no .yaml, .yml or .json files")
    elif root.exists():
        files = [root]
    else:
        raise ManifestError(f"{path}: no such file or directory")
    sources = []
    for file in files:
        try:
            sources.append((str(file), file.read_text()))
        except (OSError, UnicodeDecodeError) as exc:
            raise ManifestError(f"{file}: cannot read: {exc}") from None
    return sources


def parse_documents(source: str, text: str) -> list[tuple[int, Any]]:
    """``(document number, parsed value)`` for each non-empty document; YAML or JSON."""
    if source.endswith(".json") or text.lstrip().startswith(("{", "[")):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            if source.endswith(".json"):
                raise ManifestError(f"{source}: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
        else:
            return [(1, value)]
    try:
        documents = list(yaml.load_all(text, Loader=_Loader))  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise ManifestError(f"{source}: {at}not valid YAML: {problem}") from None
    return [(i, doc) for i, doc in enumerate(documents, start=1) if doc is not None]


def _expand_lists(documents: Iterable[tuple[int, Any]]) -> list[tuple[int, Any]]:
    out: list[tuple[int, Any]] = []
    for number, doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"), list):
            out += [(number, item) for item in doc["items"]]
        else:
            out.append((number, doc))
    return out


def validate_document(source: str, number: int, data: Any) -> Manifest:
    try:
        obj = decode_object(data)
    except ValidationError as exc:
        lines = "\n".join(f"  {error}" for error in exc.errors)
        raise ManifestError(f"{_where(source, number, data)}:\n{lines}") from None
    return Manifest(source, number, data, obj)


def load_manifests(paths: Sequence[str], stdin: TextIO, *, recursive: bool = False,
                   namespace: str | None = None) -> list[Manifest]:
    """Every document under ``paths``, all validated; raises one ManifestError listing every problem."""
    manifests: list[Manifest] = []
    problems: list[str] = []
    for path in paths:
        try:
            sources = read_sources(path, stdin, recursive=recursive)
        except ManifestError as exc:
            problems.append(str(exc))
            continue
        for source, text in sources:
            try:
                documents = _expand_lists(parse_documents(source, text))
            except ManifestError as exc:
                problems.append(str(exc))
                continue
            for number, data in documents:
                try:
                    manifest = validate_document(source, number, data)
                except ManifestError as exc:
                    problems.append(str(exc))
                    continue
                if namespace and manifest.info.namespaced and manifest.namespace not in ("", namespace):
                    problems.append(f'{manifest.where()}:\n  metadata.namespace: "{manifest.namespace}" '
                                    f'does not match --namespace "{namespace}"; drop one of them')
                    continue
                manifests.append(manifest)
    if problems:
        raise ManifestError("\nerror: ".join(problems))
    if not manifests:
        raise ManifestError(f"no objects found in {', '.join(paths)}")
    return manifests
