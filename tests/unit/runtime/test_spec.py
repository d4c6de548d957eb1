"""The OCI config builder: secure defaults, limits, joins, refusals with the field named."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.runtime import (
    ContainerSpec,
    Mount,
    NamespaceJoin,
    Resources,
    SeccompMode,
    Security,
    SpecError,
    User,
    sandbox_joins,
)
from shoal.runtime.oci import DEFAULT_CAPABILITIES, HostFacts, build_config, cgroups_path
from shoal.runtime.oci.spec import ALL_CAPABILITIES, MASKED_PATHS, READONLY_PATHS

HOST = HostFacts(machine="x86_64", cgroup_version=1, nofile_hard=20000)


def _spec(**kw: Any) -> ContainerSpec:
    base: dict[str, Any] = dict(
        id="c1", name="app", pod_uid="u1", pod_name="web-1", rootfs_path="/r", command=("/app",), args=("--x",)
    )
    base.update(kw)
    return ContainerSpec(**base)


def _build(spec: ContainerSpec, host: HostFacts = HOST) -> dict[str, Any]:
    return build_config(spec, host, cgroups_path("/shoal", spec.pod_uid, spec.id))


def _capmask(names: list[str]) -> int:
    return sum(1 << ALL_CAPABILITIES.index(n) for n in names)


def test_secure_defaults() -> None:
    cfg = _build(_spec(env=(("A", "1"),)))
    proc, linux = cfg["process"], cfg["linux"]
    assert proc["args"] == ["/app", "--x"]
    assert "A=1" in proc["env"] and any(e.startswith("PATH=") for e in proc["env"])
    caps = proc["capabilities"]
    assert _capmask(caps["effective"]) == 0xA80425FB
    assert caps["bounding"] == caps["effective"] == caps["permitted"] and caps["ambient"] == []
    assert proc["noNewPrivileges"] is True
    assert proc["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    assert {n["type"] for n in linux["namespaces"]} == {"pid", "network", "mount", "uts", "ipc"}
    assert linux["maskedPaths"] == list(MASKED_PATHS) and "/proc/sysrq-trigger" in linux["readonlyPaths"]
    assert linux["readonlyPaths"] == list(READONLY_PATHS)
    assert linux["resources"]["pids"] == {"limit": 1024}
    assert linux["cgroupsPath"] == "/shoal/u1/c1"
    assert linux["seccomp"]["defaultAction"] == "SCMP_ACT_ERRNO"
    assert cfg["hostname"] == "web-1"
    dests = {m["destination"]: m for m in cfg["mounts"]}
    assert {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup"} <= set(dests)
    assert "ro" in dests["/sys"]["options"] and "ro" in dests["/sys/fs/cgroup"]["options"]
    assert cfg["root"] == {"path": "rootfs", "readonly": False}


def test_seccomp_default_profile_gates_by_capability() -> None:
    prof = _build(_spec())["linux"]["seccomp"]
    allowed = set(prof["syscalls"][0]["names"])
    assert {"read", "write", "execve", "chroot", "arch_prctl"} <= allowed
    assert not {"mount", "unshare", "setns", "reboot", "keyctl", "kexec_load", "bpf", "acct"} & allowed
    assert prof["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    clone3 = [s for s in prof["syscalls"] if s["names"] == ["clone3"]]
    assert clone3 and clone3[0]["errnoRet"] == 38
    admin = _build(_spec(security=Security(cap_add=("SYS_ADMIN",))))["linux"]["seccomp"]
    assert {"mount", "unshare", "clone3"} <= set(admin["syscalls"][0]["names"])
    arm = _build(_spec(), HostFacts(machine="aarch64"))["linux"]["seccomp"]
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]


def test_unconfined_and_privileged() -> None:
    assert "seccomp" not in _build(_spec(security=Security(seccomp=SeccompMode.UNCONFINED)))["linux"]
    cfg = _build(_spec(security=Security(privileged=True)))
    assert cfg["process"]["capabilities"]["effective"] == list(ALL_CAPABILITIES)
    assert "maskedPaths" not in cfg["linux"] and "seccomp" not in cfg["linux"]
    assert cfg["linux"]["resources"]["devices"][0] == {"allow": True, "access": "rwm"}


@given(st.lists(st.sampled_from(ALL_CAPABILITIES), max_size=6), st.lists(st.sampled_from(ALL_CAPABILITIES), max_size=6))
def test_capability_add_drop(add: list[str], drop: list[str]) -> None:
    short_add = tuple(c.removeprefix("CAP_").lower() for c in add)
    caps = _build(_spec(security=Security(cap_add=short_add, cap_drop=tuple(drop))))["process"]["capabilities"]
    assert set(caps["effective"]) == (set(DEFAULT_CAPABILITIES) | set(add)) - set(drop)


def test_drop_all_and_unknown_capability() -> None:
    caps = _build(_spec(security=Security(cap_drop=("ALL",), cap_add=("NET_BIND_SERVICE",))))["process"]
    assert caps["capabilities"]["effective"] == []
    with pytest.raises(SpecError, match="unknown capability 'FLY'") as err:
        _build(_spec(security=Security(cap_add=("FLY",))))
    assert err.value.field == "security.cap_add[0]"


def test_apparmor_refused_without_kernel_support_and_passed_with_it() -> None:
    spec = _spec(security=Security(apparmor_profile="localhost/strict"))
    with pytest.raises(SpecError, match=r"never|refused rather than run unconfined") as err:
        _build(spec)
    assert err.value.field == "security.apparmor_profile"
    cfg = _build(spec, HostFacts(apparmor_enabled=True))
    assert cfg["process"]["apparmorProfile"] == "strict"


def test_resources_to_cgroup_limits() -> None:
    res = Resources(
        cpu_request_millis=250, cpu_limit_millis=500, memory_limit_bytes=64 << 20, pids_limit=50, io_weight=300
    )
    r = _build(_spec(resources=res))["linux"]["resources"]
    assert r["cpu"] == {"shares": 256, "quota": 50000, "period": 100000}
    assert r["memory"] == {"limit": 64 << 20, "swap": 64 << 20}
    assert r["pids"] == {"limit": 50}
    assert "blockIO" not in r  # no proportional io scheduler on this host: dropped, as Docker does
    assert _build(_spec(resources=res), HostFacts(io_weight_supported=True))["linux"]["resources"]["blockIO"] == {
        "weight": 300
    }
    assert _build(_spec(resources=Resources(cpu_limit_millis=1)))["linux"]["resources"]["cpu"]["quota"] == 1000
    assert _build(_spec())["linux"]["resources"]["cpu"] == {"shares": 2}


def test_rlimit_stays_within_hard_limit() -> None:
    cfg = _build(_spec(), HostFacts(nofile_hard=512))
    assert cfg["process"]["rlimits"][0]["hard"] == 512


def test_sandbox_join_drops_hostname_and_keeps_pid_private() -> None:
    cfg = _build(_spec(join_namespaces=sandbox_joins(42)))
    ns = {n["type"]: n.get("path") for n in cfg["linux"]["namespaces"]}
    assert ns == {
        "pid": None,
        "network": "/proc/42/ns/net",
        "mount": None,
        "uts": "/proc/42/ns/uts",
        "ipc": "/proc/42/ns/ipc",
    }
    assert "hostname" not in cfg
    with pytest.raises(SpecError, match="unknown namespace"):
        _build(_spec(join_namespaces=(NamespaceJoin("time", "/proc/1/ns/time"),)))


def test_user_namespace_cgroup_v2_mounts_and_user() -> None:
    cfg = _build(
        _spec(
            security=Security(user_namespace=True, read_only_root=True),
            user=User(1000, 1000, (5,)),
            mounts=(Mount("/data", "/srv/d", read_only=True),),
        ),
        HostFacts(cgroup_version=2),
    )
    assert {n["type"] for n in cfg["linux"]["namespaces"]} >= {"user", "cgroup"}
    assert cfg["linux"]["uidMappings"][0] == {"containerID": 0, "hostID": 100000, "size": 65536}
    assert cfg["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [5]}
    assert cfg["root"]["readonly"] is True
    data = next(m for m in cfg["mounts"] if m["destination"] == "/data")
    assert data["options"][:2] == ["rbind", "ro"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "../x"}, "id"),
        ({"command": (), "args": ()}, "command"),
        ({"working_dir": "rel"}, "working_dir"),
        ({"rootfs_path": ""}, "lower_dirs"),
        ({"lower_dirs": ("/l",)}, "lower_dirs"),
        ({"mounts": (Mount("data", "/x"),)}, "mounts[0].destination"),
        ({"env": (("A=B", "1"),)}, "env[0]"),
        ({"resources": Resources(memory_limit_bytes=0)}, "resources.memory_limit_bytes"),
        ({"resources": Resources(io_weight=5)}, "resources.io_weight"),
    ],
)
def test_bad_specs_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as err:
        _build(_spec(**change))
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


def test_unknown_architecture_is_a_clear_error() -> None:
    with pytest.raises(SpecError, match=r"no default seccomp profile for architecture 'mips'.*Unconfined"):
        _build(_spec(), HostFacts(machine="mips"))
