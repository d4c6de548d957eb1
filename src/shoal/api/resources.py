"""Generic resource operations behind the REST routes: list, get, create, replace, patch,
apply, delete, status and scale, for every kind in the model registry.

Owns request decoding, admission and the mapping of store errors to API errors. Knows no HTTP
framework: the routes module adapts it to Litestar.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable
from typing import Any

import msgspec
import yaml

from shoal.api.admission import admit_create, admit_delete, admit_update
from shoal.api.apply import merge_apply, merge_patch, record_update, same_content
from shoal.api.errors import ApiError, from_store, invalid
from shoal.api.fieldselector import parse_field_selector
from shoal.model import (
    BY_PLURAL,
    Deployment,
    FieldError,
    KindInfo,
    Object,
    SelectorError,
    ValidationError,
    decode_object,
    parse_selector,
    to_builtins,
)
from shoal.store.protocol import Conflict, ListResult, NotFound, Store, StoreError

_decoder = msgspec.json.Decoder()
Clock = Callable[[], dt.datetime]
APPLY_RETRIES = 8


def now_rfc3339(clock: Clock) -> str:
    return clock().strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def kind_for(plural: str) -> KindInfo:
    info = BY_PLURAL.get(plural)
    if info is None:
        raise ApiError(404, f'the server does not have a resource type "{plural}"; known: '
                            f"{', '.join(sorted(BY_PLURAL))}")
    return info


def _meta(obj: Object) -> Any:
    return obj.metadata  # type: ignore[attr-defined]


def parse_body(body: bytes, content_type: str) -> Any:
    if not body.strip():
        raise ApiError(400, "the request body is empty; send a JSON object")
    if "yaml" in content_type:
        try:
            return yaml.safe_load(body)
        except yaml.YAMLError as exc:
            raise ApiError(400, f"the request body is not valid YAML: {exc}") from None
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None


class ResourceAPI:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    # -- helpers -------------------------------------------------------------------------
    def _scope(self, info: KindInfo, namespace: str | None) -> str:
        if info.namespaced:
            if namespace is None:
                raise ApiError(404, f"{info.plural} are namespaced; use /api/v1/namespaces/NS/{info.plural}")
            return namespace
        if namespace is not None:
            raise ApiError(404, f"{info.plural} are cluster-scoped; use /api/v1/{info.plural}")
        return ""

    async def _require_namespace(self, namespace: str) -> None:
        if not namespace:
            return
        try:
            await self.store.get("Namespace", "", namespace)
        except NotFound:
            raise ApiError(404, f'namespace "{namespace}" not found; create it with '
                                f"`shoal create namespace {namespace}`", kind="Namespace",
                           name=namespace) from None

    def _decode(self, data: Any, info: KindInfo, namespace: str, name: str | None) -> Object:
        if isinstance(data, dict):
            meta = data.get("metadata")
            if meta is None:
                data = {**data, "metadata": {}}
            elif not isinstance(meta, dict):
                raise ApiError(422, "metadata must be an object", kind=info.kind)
            meta = data["metadata"]
            body_ns = meta.get("namespace")
            if info.namespaced:
                if body_ns not in (None, "", namespace):
                    raise ApiError(400, f'the namespace of the object ("{body_ns}") does not match the '
                                        f'namespace of the request ("{namespace}")', kind=info.kind)
                data["metadata"] = {**meta, "namespace": namespace}
            elif body_ns:
                raise ApiError(422, f"{info.plural} are cluster-scoped; remove metadata.namespace",
                               kind=info.kind)
            if name is not None and meta.get("name") not in (None, "", name):
                raise ApiError(400, f'the name of the object ("{meta.get("name")}") does not match the '
                                    f'name in the URL ("{name}")', kind=info.kind, name=name)
            if name is not None and not meta.get("name"):
                data["metadata"] = {**data["metadata"], "name": name}
        try:
            return decode_object(data, info)
        except ValidationError as exc:
            meta_name = data.get("metadata", {}).get("name", "") if isinstance(data, dict) else ""
            raise invalid(info.kind, str(meta_name or name or ""), exc) from None

    async def _get(self, info: KindInfo, namespace: str, name: str) -> Object:
        try:
            return await self.store.get(info.kind, namespace, name)
        except StoreError as exc:
            raise from_store(exc, info.kind, name) from None

    # -- operations ----------------------------------------------------------------------
    async def list(self, info: KindInfo, namespace: str | None, label_selector: str,
                   field_selector: str) -> ListResult:
        try:
            selector = parse_selector(label_selector) if label_selector else None
        except SelectorError as exc:
            raise ApiError(400, f"labelSelector: {exc}") from None
        fields = parse_field_selector(field_selector)
        result = await self.store.list(info.kind, namespace if info.namespaced else None, selector)
        if fields is not None:
            return ListResult([o for o in result.items if fields.matches(o)], result.revision)
        return result

    async def get(self, info: KindInfo, namespace: str | None, name: str) -> Object:
        return await self._get(info, self._scope(info, namespace), name)

    async def create(self, info: KindInfo, namespace: str | None, data: Any) -> Object:
        scope = self._scope(info, namespace)
        obj = admit_create(self._decode(data, info, scope, None))
        await self._require_namespace(scope)
        try:
            return await self.store.create(obj)
        except StoreError as exc:
            raise from_store(exc, info.kind, _meta(obj).name) from None

    async def replace(self, info: KindInfo, namespace: str | None, name: str, data: Any) -> Object:
        scope = self._scope(info, namespace)
        new = self._decode(data, info, scope, name)
        old = await self._get(info, scope, name)
        if info.has_status:
            new = msgspec.structs.replace(new, status=old.status)  # type: ignore[attr-defined]
        try:
            return await self.store.update(admit_update(new, old))
        except StoreError as exc:
            raise from_store(exc, info.kind, name) from None

    async def replace_status(self, info: KindInfo, namespace: str | None, name: str, data: Any) -> Object:
        if not info.has_status:
            raise ApiError(404, f"{info.plural} have no status subresource")
        scope = self._scope(info, namespace)
        incoming = self._decode(data, info, scope, name)
        old = await self._get(info, scope, name)
        rv = _meta(incoming).resource_version
        updated = msgspec.structs.replace(old, status=incoming.status)  # type: ignore[attr-defined]
        if rv:
            updated = msgspec.structs.replace(updated, metadata=msgspec.structs.replace(
                _meta(updated), resource_version=rv))
        try:
            return await self.store.update(updated)
        except StoreError as exc:
            raise from_store(exc, info.kind, name) from None

    async def merge_patch(self, info: KindInfo, namespace: str | None, name: str, patch: Any) -> Object:
        if not isinstance(patch, dict):
            raise ApiError(400, "a merge patch must be a JSON object")
        scope = self._scope(info, namespace)
        for _ in range(APPLY_RETRIES):
            old = await self._get(info, scope, name)
            merged = merge_patch(to_builtins(old), patch)
            new = self._decode(merged, info, scope, name)
            try:
                return await self.store.update(admit_update(new, old))
            except Conflict:
                if isinstance(patch.get("metadata"), dict) and patch["metadata"].get("resourceVersion"):
                    raise from_store(Conflict(), info.kind, name) from None
                continue
            except StoreError as exc:
                raise from_store(exc, info.kind, name) from None
        raise ApiError(409, f'{info.kind.lower()} "{name}" kept changing; retry', reason="Conflict")

    async def apply(self, info: KindInfo, namespace: str | None, name: str, config: Any,
                    manager: str) -> tuple[Object, str]:
        """Server-side apply; returns the object and created|configured|unchanged."""
        if not manager:
            raise ApiError(422, "fieldManager is required for apply, e.g. ?fieldManager=shoal-cli")
        scope = self._scope(info, namespace)
        self._decode(config, info, scope, name)  # reject bad input before merging anything
        for _ in range(APPLY_RETRIES):
            try:
                old: Object | None = await self.store.get(info.kind, scope, name)
            except NotFound:
                old = None
            live = to_builtins(old) if old is not None else None
            merged = merge_apply(live, config, manager, now_rfc3339(self.clock))
            new = self._decode(merged, info, scope, name)
            try:
                if old is None:
                    await self._require_namespace(scope)
                    return await self.store.create(admit_create(new)), "created"
                assert live is not None
                if same_content(to_builtins(new), live):
                    return old, "unchanged"
                new = msgspec.structs.replace(new, metadata=msgspec.structs.replace(
                    _meta(new), resource_version=_meta(old).resource_version))
                return await self.store.update(admit_update(new, old)), "configured"
            except Conflict:
                continue
            except StoreError as exc:
                if exc.code == 409 and old is None:
                    continue  # created concurrently: apply over it
                raise from_store(exc, info.kind, name) from None
        raise ApiError(409, f'{info.kind.lower()} "{name}" kept changing; retry', reason="Conflict")

    async def delete(self, info: KindInfo, namespace: str | None, name: str, resource_version: str = "") -> Object:
        scope = self._scope(info, namespace)
        obj = await self._get(info, scope, name)
        admit_delete(obj)
        if info.kind == "Namespace":
            await self._delete_namespace_contents(name)
        try:
            return await self.store.delete(info.kind, scope, name, resource_version)
        except StoreError as exc:
            raise from_store(exc, info.kind, name) from None

    async def _delete_namespace_contents(self, namespace: str) -> None:
        for kind in BY_PLURAL.values():
            if not kind.namespaced:
                continue
            result = await self.store.list(kind.kind, namespace)
            for obj in result.items:
                with contextlib.suppress(NotFound):
                    await self.store.delete(kind.kind, namespace, _meta(obj).name)

    async def get_scale(self, namespace: str | None, name: str) -> dict[str, Any]:
        deploy = await self.get(BY_PLURAL["deployments"], namespace, name)
        assert isinstance(deploy, Deployment)
        return _scale(deploy)

    async def put_scale(self, namespace: str | None, name: str, data: Any, manager: str) -> dict[str, Any]:
        info = BY_PLURAL["deployments"]
        spec = data.get("spec") if isinstance(data, dict) else None
        replicas = spec.get("replicas") if isinstance(spec, dict) else None
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise ApiError(422, "spec.replicas must be a whole number ≥ 0", kind="Scale", name=name,
                           causes=[FieldError("spec.replicas", "must be a whole number ≥ 0")])
        scope = self._scope(info, namespace)
        for _ in range(APPLY_RETRIES):
            old = await self._get(info, scope, name)
            live = to_builtins(old)
            live.setdefault("spec", {})["replicas"] = replicas
            live = record_update(live, manager or "shoal-scale", {"spec": {"replicas": replicas}},
                                 now_rfc3339(self.clock))
            new = self._decode(live, info, scope, name)
            try:
                stored = await self.store.update(new)
            except Conflict:
                await asyncio.sleep(0)
                continue
            assert isinstance(stored, Deployment)
            return _scale(stored)
        raise ApiError(409, f'deployment "{name}" kept changing; retry', reason="Conflict")


def _scale(deploy: Deployment) -> dict[str, Any]:
    meta = deploy.metadata
    return {"apiVersion": "shoal/v1", "kind": "Scale",
            "metadata": {"name": meta.name, "namespace": meta.namespace, "resourceVersion": meta.resource_version},
            "spec": {"replicas": deploy.spec.replicas},
            "status": {"replicas": deploy.status.replicas, "readyReplicas": deploy.status.ready_replicas}}
