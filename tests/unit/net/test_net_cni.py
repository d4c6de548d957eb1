"""CNI invocation per the spec, against fake plugins that record what they were given: the
environment, stdin config, prevResult chaining, DEL in reverse, runtimeConfig by capability,
and errors carrying the plugin's code and msg."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from shoal.net import CniError, CniInvoker, RuntimeConf
from shoal.net.cni import add_network_list, check_network_list, del_network_list, parse_conflist

FAKE = f"""#!{sys.executable}
import json, os, sys
conf = json.load(sys.stdin)
name = os.path.basename(sys.argv[0])
with open(os.environ["FAKE_LOG"], "a") as log:
    env = {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}
    log.write(json.dumps({{"plugin": name, "env": env, "conf": conf}}) + "\\n")
if conf.get("fail") == os.environ["CNI_COMMAND"]:
    print(json.dumps({{"cniVersion": conf["cniVersion"], "code": 11, "msg": "bridge is on fire",
                      "details": "try again"}}))
    sys.exit(1)
if conf.get("crash"):
    sys.stderr.write("panic: nil pointer")
    sys.exit(2)
if os.environ["CNI_COMMAND"] == "ADD":
    prev = conf.get("prevResult") or {{"cniVersion": conf["cniVersion"], "ips": []}}
    prev = dict(prev, ips=prev["ips"] + [{{"address": conf["addr"]}}] if "addr" in conf else prev["ips"])
    print(json.dumps(prev))
"""


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[CniInvoker, Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("one", "two", "three"):
        (bindir / name).write_text(FAKE)
        (bindir / name).chmod(0o755)
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("FAKE_LOG", str(log))
    return CniInvoker([str(tmp_path / "empty"), str(bindir)], timeout=20), log


def calls(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def chain(*plugins: dict[str, Any], version: str = "1.0.0") -> Any:
    return parse_conflist(json.dumps({"cniVersion": version, "name": "net1", "plugins": list(plugins)}))


RT = RuntimeConf(
    "pod-1",
    "/run/shoal/netns/pod-1",
    "eth0",
    (("IgnoreUnknown", "1"), ("K8S_POD_NAME", "web")),
    {"portMappings": [{"hostPort": 80, "containerPort": 8080, "protocol": "tcp"}]},
)


def test_add_runs_in_order_passing_prev_result_and_capabilities(plugins: tuple[CniInvoker, Path]) -> None:
    invoker, log = plugins
    conflist = chain(
        {"type": "one", "addr": "10.77.1.2/24"},
        {"type": "two", "capabilities": {"portMappings": True}},
        {"type": "three", "capabilities": {"bandwidth": True}, "addr": "10.77.1.3/24"},
    )
    result = asyncio.run(add_network_list(invoker, conflist, RT))
    assert [ip["address"] for ip in result["ips"]] == ["10.77.1.2/24", "10.77.1.3/24"]
    seen = calls(log)
    assert [c["plugin"] for c in seen] == ["one", "two", "three"]
    assert seen[0]["env"] == {
        "CNI_COMMAND": "ADD",
        "CNI_CONTAINERID": "pod-1",
        "CNI_NETNS": "/run/shoal/netns/pod-1",
        "CNI_IFNAME": "eth0",
        "CNI_PATH": ":".join(invoker.paths),
        "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=web",
    }
    assert seen[0]["conf"]["name"] == "net1" and seen[0]["conf"]["cniVersion"] == "1.0.0"
    assert "prevResult" not in seen[0]["conf"]
    assert seen[1]["conf"]["prevResult"]["ips"] == [{"address": "10.77.1.2/24"}]
    assert seen[1]["conf"]["runtimeConfig"] == {"portMappings": RT.capability_args["portMappings"]}
    assert "runtimeConfig" not in seen[2]["conf"]  # bandwidth declared but not asked for
    assert "runtimeConfig" not in seen[0]["conf"]  # no capabilities declared


def test_del_runs_in_reverse_with_cached_result_and_goes_on_past_a_failure(
    plugins: tuple[CniInvoker, Path],
) -> None:
    invoker, log = plugins
    conflist = chain({"type": "one"}, {"type": "two", "fail": "DEL"}, {"type": "three"})
    cached = {"cniVersion": "1.0.0", "ips": [{"address": "10.77.1.2/24"}]}
    with pytest.raises(CniError) as err:
        asyncio.run(del_network_list(invoker, conflist, RT, cached))
    assert (err.value.plugin, err.value.command, err.value.code) == ("two", "DEL", 11)
    assert str(err.value) == "CNI plugin 'two' DEL failed (code 11): bridge is on fire: try again"
    seen = calls(log)
    assert [c["plugin"] for c in seen] == ["three", "two", "one"]  # "one" (IPAM owner) still ran
    assert all(c["conf"]["prevResult"] == cached and c["env"]["CNI_COMMAND"] == "DEL" for c in seen)


def test_old_versions_get_no_prev_result_on_del_and_skip_check(plugins: tuple[CniInvoker, Path]) -> None:
    invoker, log = plugins
    conflist = chain({"type": "one"}, version="0.3.1")
    asyncio.run(del_network_list(invoker, conflist, RT, {"ips": []}))
    asyncio.run(check_network_list(invoker, conflist, RT, {"ips": []}))
    assert [(c["env"]["CNI_COMMAND"], "prevResult" in c["conf"]) for c in calls(log)] == [("DEL", False)]


def test_check_passes_cached_result_and_honours_disable_check(plugins: tuple[CniInvoker, Path]) -> None:
    invoker, log = plugins
    cached = {"cniVersion": "1.0.0", "ips": []}
    asyncio.run(check_network_list(invoker, chain({"type": "one"}, {"type": "two"}), RT, cached))
    assert [(c["plugin"], c["conf"]["prevResult"]) for c in calls(log)] == [("one", cached), ("two", cached)]
    disabled = parse_conflist(
        json.dumps({"cniVersion": "1.0.0", "name": "n", "disableCheck": True, "plugins": [{"type": "three"}]})
    )
    asyncio.run(check_network_list(invoker, disabled, RT, cached))
    assert len(calls(log)) == 2


def test_errors_for_add_failure_crash_and_missing_plugin(plugins: tuple[CniInvoker, Path]) -> None:
    invoker, log = plugins
    with pytest.raises(CniError) as err:
        asyncio.run(
            add_network_list(
                invoker, chain({"type": "one"}, {"type": "two", "fail": "ADD"}, {"type": "three"}), RT
            )
        )
    assert (err.value.plugin, err.value.code, err.value.msg) == ("two", 11, "bridge is on fire")
    assert [c["plugin"] for c in calls(log)] == ["one", "two"]  # the chain stops at the failure
    with pytest.raises(CniError) as err:
        asyncio.run(add_network_list(invoker, chain({"type": "one", "crash": True}), RT))
    assert "exited with status 2" in str(err.value) and "panic: nil pointer" in str(err.value)
    with pytest.raises(CniError) as err:
        asyncio.run(add_network_list(invoker, chain({"type": "macvlan9"}), RT))
    assert "no executable 'macvlan9'" in str(err.value) and "containernetworking-plugins" in str(err.value)
