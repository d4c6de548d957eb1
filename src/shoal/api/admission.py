"""Admission: the defaults and checks the API applies to an object before it is stored.

Kind-specific and pure: given the incoming object (and the stored one on update), return the
object to store or raise ``ApiError``. No store access here.
"""

from __future__ import annotations

import base64
import binascii

import msgspec

from shoal.api.errors import ApiError
from shoal.model import FieldError, Namespace, Object, Pod, PodStatus, Secret
from shoal.model.qos import qos_class

PROTECTED_NAMESPACES = ("default",)


def admit_create(obj: Object) -> Object:
    if isinstance(obj, Pod):
        return msgspec.structs.replace(obj, status=PodStatus(qos_class=qos_class(obj.spec).value))
    if isinstance(obj, Secret):
        return _fold_string_data(obj)
    return obj


def admit_update(new: Object, old: Object) -> Object:
    if isinstance(new, Pod) and isinstance(old, Pod):
        if old.spec.node_name and new.spec.node_name != old.spec.node_name:
            raise ApiError(422, f'pod "{old.metadata.name}" is bound to node "{old.spec.node_name}"; '
                                "delete and recreate it to move it", kind="Pod", name=old.metadata.name,
                           causes=[FieldError("spec.nodeName", "cannot change once set")])
        return new
    if isinstance(new, Secret):
        return _fold_string_data(new)
    return new


def admit_delete(obj: Object) -> None:
    if isinstance(obj, Namespace) and obj.metadata.name in PROTECTED_NAMESPACES:
        raise ApiError(422, f'namespace "{obj.metadata.name}" cannot be deleted', kind="Namespace",
                       name=obj.metadata.name)


def _fold_string_data(secret: Secret) -> Secret:
    data = dict(secret.data)
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(422, f'secret "{secret.metadata.name}": data.{key} is not base64; put plain '
                                "text under stringData instead", kind="Secret", name=secret.metadata.name,
                           causes=[FieldError(f"data.{key}", "must be base64; use stringData for plain text")]
                           ) from None
    for key, value in secret.string_data.items():
        data[key] = base64.b64encode(value.encode()).decode()
    return msgspec.structs.replace(secret, data=data, string_data={})
