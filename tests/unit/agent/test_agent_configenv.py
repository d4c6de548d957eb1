"""ConfigMap/Secret → container env and volume files: precedence, prefix, optional, missing, modes."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pytest

from shoal.agent.configenv import ConfigKey, ConfigKind, ConfigMissing, container_env, pod_refs, volume_files
from shoal.model import decode_object
from shoal.model.pod import Pod

CM = ConfigKey(ConfigKind.CONFIG_MAP, "edge", "app")
SECRET = ConfigKey(ConfigKind.SECRET, "edge", "creds")
DATA: dict[ConfigKey, Mapping[str, bytes]] = {
    CM: {"LEVEL": b"debug", "MODE": b"cm", "bad name": b"x", "app.conf": b"a=1\n"},
    SECRET: {"PASSWORD": b"s3cret", "token": b"t0k"},
}


def make_pod(container: dict[str, object] | None = None, **spec: object) -> Pod:
    obj = decode_object({"apiVersion": "shoal/v1", "kind": "Pod",
                         "metadata": {"name": "web", "namespace": "edge", "uid": "u1"},
                         "spec": {"containers": [container or {"name": "c", "image": "x"}], **spec}}, check=False)
    assert isinstance(obj, Pod)
    return obj


def env_of(container: dict[str, object], data: Mapping[ConfigKey, Mapping[str, bytes]] = DATA) -> dict[str, str]:
    c = make_pod({"name": "c", "image": "x", **container}).spec.containers[0]
    return dict(container_env(c, "edge", data.get, "spec.containers[0]"))


def test_env_from_with_prefix_then_env_overrides() -> None:
    env = env_of({"envFrom": [{"configMapRef": {"name": "app"}}, {"secretRef": {"name": "creds"}, "prefix": "DB_"}],
                  "env": [{"name": "MODE", "value": "plain"},
                          {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]})
    assert env == {"LEVEL": "debug", "MODE": "plain", "app.conf": "a=1\n", "DB_PASSWORD": "s3cret",
                   "DB_token": "t0k", "TOKEN": "t0k"}  # "bad name" is not a variable name: skipped


def test_optional_references_to_missing_objects_and_keys_add_nothing() -> None:
    missing_key = {"configMapKeyRef": {"name": "app", "key": "nope", "optional": True}}
    missing_object = {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}}
    env = env_of({"envFrom": [{"configMapRef": {"name": "gone", "optional": True}}],
                  "env": [{"name": "A", "valueFrom": missing_key}, {"name": "B", "valueFrom": missing_object}]})
    assert env == {}


@pytest.mark.parametrize(("container", "field", "text"), [
    ({"envFrom": [{"secretRef": {"name": "gone"}}]}, "spec.containers[0].envFrom[0].secretRef",
     'Secret "edge/gone" not found'),
    ({"env": [{"name": "A", "valueFrom": {"configMapKeyRef": {"name": "app", "key": "nope"}}}]},
     "spec.containers[0].env[0].valueFrom.configMapKeyRef", 'key "nope" of ConfigMap "edge/app" not found'),
])
def test_missing_required_reference_names_field_object_and_key(container: dict[str, object], field: str,
                                                               text: str) -> None:
    with pytest.raises(ConfigMissing) as err:
        env_of(container)
    assert err.value.field == field and text in str(err.value) and "optional: true" in str(err.value)
    assert "s3cret" not in str(err.value)


def test_volume_items_pick_keys_paths_and_modes() -> None:
    pod = make_pod(volumes=[{"name": "s", "secret": {"secretName": "creds", "defaultMode": 0o400,
                                                     "items": [{"key": "token", "path": "auth/token"},
                                                               {"key": "PASSWORD", "path": "pw", "mode": 0o440}]}}])
    files = volume_files(pod.spec.volumes[0], "edge", DATA.get, "spec.volumes[0]")
    assert files is not None
    assert [(f.path, f.content, oct(f.mode)) for f in files] == [("auth/token", b"t0k", "0o400"),
                                                                  ("pw", b"s3cret", "0o440")]


def test_volume_without_items_has_every_key_and_default_mode_0644() -> None:
    pod = make_pod(volumes=[{"name": "c", "configMap": {"name": "app"}}])
    files = volume_files(pod.spec.volumes[0], "edge", DATA.get, "spec.volumes[0]")
    assert files is not None and {f.path for f in files} == set(DATA[CM]) and {f.mode for f in files} == {0o644}


def test_volume_missing_object_optional_or_not_and_bad_paths() -> None:
    pod = make_pod(volumes=[{"name": "a", "configMap": {"name": "gone", "optional": True}},
                            {"name": "b", "configMap": {"name": "gone"}},
                            {"name": "c", "configMap": {"name": "app", "items": [{"key": "LEVEL", "path": "../x"}]}},
                            {"name": "d", "emptyDir": {}}])
    vols = pod.spec.volumes
    assert volume_files(vols[0], "edge", DATA.get, "v") == []
    with pytest.raises(ConfigMissing, match=re.escape('spec.volumes[1].configMap: ConfigMap "edge/gone" not found')):
        volume_files(vols[1], "edge", DATA.get, "spec.volumes[1]")
    with pytest.raises(ValueError, match="must be relative"):
        volume_files(vols[2], "edge", DATA.get, "spec.volumes[2]")
    assert volume_files(vols[3], "edge", DATA.get, "v") is None


def test_pod_refs_cover_init_containers_and_volumes() -> None:
    pod = make_pod({"name": "c", "image": "x", "env": [{"name": "A", "valueFrom": {"configMapKeyRef":
                                                                                   {"name": "app", "key": "LEVEL"}}}]},
                   initContainers=[{"name": "i", "image": "x", "envFrom": [{"secretRef": {"name": "creds"}}]}],
                   volumes=[{"name": "v", "secret": {"secretName": "tls"}}])
    assert pod_refs(pod) == {CM, SECRET, ConfigKey(ConfigKind.SECRET, "edge", "tls")}
