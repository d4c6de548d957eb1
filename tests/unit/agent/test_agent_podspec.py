"""Pod container → runtime ContainerSpec: Kubernetes' command/args rules, env, limits, refusals."""

from __future__ import annotations

import pytest

from shoal.agent.configenv import ConfigKey, ConfigKind
from shoal.agent.podspec import ImageDefaults, build_container_spec, check_supported, container_id
from shoal.model import decode_object
from shoal.model.pod import Pod
from shoal.runtime.protocol import NamespaceJoin, SpecError

IMAGE = ImageDefaults.from_config({"Entrypoint": ["/bin/app"], "Cmd": ["--serve"], "Env": ["PATH=/bin", "MODE=prod"],
                                   "WorkingDir": "/srv"})


def make_pod(container: dict[str, object], **spec: object) -> Pod:
    obj = decode_object({"apiVersion": "shoal/v1", "kind": "Pod",
                         "metadata": {"name": "web", "namespace": "edge", "uid": "abc-123"},
                         "spec": {"containers": [container], **spec}}, check=False)
    assert isinstance(obj, Pod)
    return obj


def build(pod: Pod, image: ImageDefaults = IMAGE) -> object:
    return build_container_spec(pod, 0, image, lower_dirs=["/l/top", "/l/base"], joins=(),
                                log_path="/logs/0.log", volume_dirs={"scratch": "/pods/abc-123/volumes/scratch"})


def test_image_defaults_apply_when_the_pod_sets_nothing() -> None:
    spec = build_container_spec(make_pod({"name": "c", "image": "x"}), 0, IMAGE, lower_dirs=["/l"], joins=(),
                                log_path="/l.log", volume_dirs={})
    assert spec.argv == ("/bin/app", "--serve")
    assert dict(spec.env) == {"PATH": "/bin", "MODE": "prod"}
    assert spec.working_dir == "/srv" and spec.hostname == "web" and spec.pod_namespace == "edge"
    assert spec.id == container_id("abc-123", "c") == "abc-123-c"


def test_command_replaces_entrypoint_and_args_replace_cmd() -> None:
    with_command = build_container_spec(make_pod({"name": "c", "image": "x", "command": ["sh"]}), 0, IMAGE,
                                        lower_dirs=[], joins=(), log_path="", volume_dirs={})
    assert with_command.argv == ("sh",)
    with_args = build_container_spec(make_pod({"name": "c", "image": "x", "args": ["--debug"]}), 0, IMAGE,
                                     lower_dirs=[], joins=(), log_path="", volume_dirs={})
    assert with_args.argv == ("/bin/app", "--debug")


def test_env_limits_security_and_volumes() -> None:
    pod = make_pod({"name": "c", "image": "x", "env": [{"name": "MODE", "value": "dev"}],
                    "resources": {"requests": {"cpu": "100m"}, "limits": {"cpu": "500m", "memory": "64Mi"}},
                    "securityContext": {"readOnlyRootFilesystem": True, "runAsUser": 1000,
                                        "capabilities": {"drop": ["NET_RAW"]}},
                    "volumeMounts": [{"name": "scratch", "mountPath": "/tmp/s"}]},
                   volumes=[{"name": "scratch", "emptyDir": {}}])
    spec = build_container_spec(pod, 0, IMAGE, lower_dirs=["/l"], joins=(NamespaceJoin("network", "/proc/9/ns/net"),),
                                log_path="/l.log", volume_dirs={"scratch": "/v/scratch"})
    assert dict(spec.env)["MODE"] == "dev"
    assert (spec.resources.cpu_request_millis, spec.resources.cpu_limit_millis) == (100, 500)
    assert spec.resources.memory_limit_bytes == 64 << 20
    assert spec.security.read_only_root and spec.security.cap_drop == ("NET_RAW",)
    assert spec.user.uid == 1000 and spec.user.gid == 1000
    assert spec.mounts[0].destination == "/tmp/s" and spec.mounts[0].source == "/v/scratch"
    assert spec.join_namespaces[0].path == "/proc/9/ns/net"


@pytest.mark.parametrize(("container", "field"), [
    ({"name": "c", "image": "x", "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]},
     "spec.containers[0].env[0].valueFrom"),
    ({"name": "c", "image": "x", "envFrom": [{"configMapRef": {"name": "cm"}}]}, "spec.containers[0].envFrom"),
    ({"name": "c", "image": "x", "volumeMounts": [{"name": "nope", "mountPath": "/n"}]},
     "spec.containers[0].volumeMounts[0].name"),
    ({"name": "c", "image": "x", "securityContext": {"runAsNonRoot": True}},
     "spec.containers[0].securityContext.runAsNonRoot"),
])
def test_what_the_agent_cannot_do_is_refused_naming_the_field(container: dict[str, object], field: str) -> None:
    with pytest.raises(SpecError) as err:
        build_container_spec(make_pod(container), 0, IMAGE, lower_dirs=[], joins=(), log_path="", volume_dirs={})
    assert err.value.field == field


def test_image_without_command_needs_one() -> None:
    with pytest.raises(SpecError, match="set command"):
        build_container_spec(make_pod({"name": "c", "image": "x"}), 0, ImageDefaults(), lower_dirs=[], joins=(),
                             log_path="", volume_dirs={})


def test_host_path_volumes_are_refused_rather_than_skipped() -> None:
    pod = make_pod({"name": "c", "image": "x"}, volumes=[{"name": "h", "hostPath": {"path": "/etc"}}])
    with pytest.raises(SpecError) as err:
        check_supported(pod)
    assert err.value.field == "spec.volumes[0]"
    check_supported(make_pod({"name": "c", "image": "x"}, initContainers=[{"name": "setup", "image": "x"}],
                             volumes=[{"name": "cm", "configMap": {"name": "app"}}]))


def test_init_container_env_from_a_config_map_and_read_only_config_volumes() -> None:
    pod = make_pod({"name": "c", "image": "x", "volumeMounts": [{"name": "cfg", "mountPath": "/etc/app"}]},
                   initContainers=[{"name": "setup", "image": "x", "command": ["true"],
                                    "envFrom": [{"configMapRef": {"name": "app"}, "prefix": "APP_"}],
                                    "env": [{"name": "MODE", "value": "init"}]}],
                   volumes=[{"name": "cfg", "configMap": {"name": "app"}}])
    data = {ConfigKey(ConfigKind.CONFIG_MAP, "edge", "app"): {"level": b"debug"}}
    init = build_container_spec(pod, 0, IMAGE, lower_dirs=[], joins=(), log_path="", volume_dirs={},
                                config=data.get, init=True)
    assert init.id == "abc-123-setup" and init.argv == ("true",)
    assert dict(init.env)["APP_level"] == "debug" and dict(init.env)["MODE"] == "init"
    app = build_container_spec(pod, 0, IMAGE, lower_dirs=[], joins=(), log_path="", volume_dirs={"cfg": "/v/cfg"},
                               config=data.get)
    assert app.mounts[0].read_only and "ro" in app.mounts[0].options
