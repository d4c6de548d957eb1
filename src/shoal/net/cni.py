"""Invocation of CNI plugins per the CNI spec: one plugin, and a conflist chain.

Owns ``NetworkConfigList`` (a parsed, validated conflist), ``CniInvoker`` (finds a plugin on
CNI_PATH and runs it as an async subprocess with CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS,
CNI_IFNAME, CNI_ARGS and CNI_PATH, the network config on stdin) and the chain semantics of
libcni: ADD runs the plugins in order passing each one's result as the next one's
``prevResult``; DEL runs them in reverse with the cached ADD result; CHECK runs them in order
with it. ``runtimeConfig`` carries only the capabilities a plugin declares. A failing plugin
raises ``CniError`` with its error JSON (code, msg, details). It must not create namespaces,
keep state or know about pods: ``sandbox`` does that.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.net.protocol import NetworkError

__all__ = [
    "DEFAULT_CNI_PATH",
    "CniError",
    "CniInvoker",
    "ConflistError",
    "NetworkConfigList",
    "RuntimeConf",
    "add_network_list",
    "check_network_list",
    "del_network_list",
    "load_conflist",
    "parse_conflist",
]

DEFAULT_CNI_PATH = ("/usr/lib/cni", "/opt/cni/bin")
_CHECK_VERSIONS = ("0.1.", "0.2.", "0.3.")  # CHECK exists from 0.4.0 on
_CACHED_DEL_VERSIONS = _CHECK_VERSIONS  # DEL gets prevResult from 0.4.0 on


class ConflistError(NetworkError):
    def __init__(self, source: str, field_path: str, message: str) -> None:
        super().__init__(f"{source}: {field_path}: {message}")
        self.source = source
        self.field = field_path


class CniError(NetworkError):
    """A plugin that failed; ``code`` and ``msg`` come from the plugin's error JSON."""

    def __init__(self, plugin: str, command: str, code: int, msg: str, details: str = "") -> None:
        text = f"CNI plugin {plugin!r} {command} failed (code {code}): {msg}"
        super().__init__(f"{text}: {details}" if details else text)
        self.plugin = plugin
        self.command = command
        self.code = code
        self.msg = msg
        self.details = details


@dataclass(frozen=True, slots=True)
class NetworkConfigList:
    name: str
    cni_version: str
    plugins: tuple[Mapping[str, Any], ...]
    disable_check: bool = False
    source: str = "<conflist>"


@dataclass(frozen=True, slots=True)
class RuntimeConf:
    """What the runtime passes per attachment: CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS
    and the capability arguments that become ``runtimeConfig`` (portMappings, bandwidth, ...)."""

    container_id: str
    netns: str
    ifname: str = "eth0"
    args: tuple[tuple[str, str], ...] = ()
    capability_args: Mapping[str, Any] = field(default_factory=dict)


def parse_conflist(text: str | bytes, source: str = "<conflist>") -> NetworkConfigList:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConflistError(
            source, "(file)", f"not valid JSON ({exc}); fix the file or delete it so shoal writes its default"
        ) from exc
    if not isinstance(doc, dict):
        raise ConflistError(
            source, "(file)", "a conflist must be a JSON object with name, cniVersion, plugins"
        )
    for key in ("name", "cniVersion"):
        if not isinstance(doc.get(key), str) or not doc[key]:
            raise ConflistError(source, key, "is required and must be a non-empty string")
    plugins = doc.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise ConflistError(source, "plugins", "must be a non-empty list of plugin objects")
    for i, plugin in enumerate(plugins):
        if not isinstance(plugin, dict) or not isinstance(plugin.get("type"), str) or not plugin["type"]:
            raise ConflistError(
                source, f"plugins[{i}].type", "every plugin needs a type (the plugin binary name)"
            )
        if "/" in plugin["type"]:
            raise ConflistError(
                source,
                f"plugins[{i}].type",
                f"{plugin['type']!r} must be a plain binary name found on the CNI path, not a path",
            )
    return NetworkConfigList(
        doc["name"], doc["cniVersion"], tuple(plugins), bool(doc.get("disableCheck", False)), source
    )


def load_conflist(path: Path) -> NetworkConfigList:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConflistError(str(path), "(file)", f"cannot read it ({exc.strerror})") from exc
    return parse_conflist(text, str(path))


class CniInvoker:
    """Runs plugin binaries found on ``paths`` (the CNI_PATH), each bounded by ``timeout``."""

    def __init__(self, paths: Sequence[str] = DEFAULT_CNI_PATH, timeout: float = 30.0) -> None:
        self.paths = tuple(paths)
        self.timeout = timeout

    def find(self, plugin_type: str) -> str:
        for directory in self.paths:
            candidate = os.path.join(directory, plugin_type)
            if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
                return candidate
        raise CniError(
            plugin_type,
            "lookup",
            0,
            f"no executable {plugin_type!r} in {':'.join(self.paths)}",
            "install Debian's containernetworking-plugins or fix the CNI path",
        )

    async def run(self, command: str, conf: Mapping[str, Any], rt: RuntimeConf) -> Any:
        """Run one plugin; return its decoded stdout (None when it printed nothing)."""
        plugin_type = str(conf["type"])
        binary = self.find(plugin_type)
        env = dict(os.environ)
        env |= {
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": rt.container_id,
            "CNI_NETNS": rt.netns,
            "CNI_IFNAME": rt.ifname,
            "CNI_PATH": ":".join(self.paths),
            "CNI_ARGS": ";".join(f"{k}={v}" for k, v in rt.args),
        }
        proc = await asyncio.create_subprocess_exec(
            binary,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(json.dumps(conf).encode()), self.timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise CniError(
                plugin_type,
                command,
                0,
                f"did not finish within {self.timeout:g}s",
                "the plugin is stuck; check the node's network state",
            ) from None
        if proc.returncode != 0:
            raise _plugin_error(plugin_type, command, proc.returncode or 0, out, err)
        if not out.strip():
            return None
        try:
            return json.loads(out)
        except ValueError as exc:
            raise CniError(
                plugin_type, command, 0, "printed output that is not JSON", out.decode(errors="replace")[:500]
            ) from exc


def _plugin_error(plugin: str, command: str, returncode: int, out: bytes, err: bytes) -> CniError:
    try:
        doc = json.loads(out)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and ("code" in doc or "msg" in doc):
        code = doc.get("code")
        return CniError(
            plugin,
            command,
            code if isinstance(code, int) else returncode,
            str(doc.get("msg", "")),
            str(doc.get("details", "")),
        )
    text = (err or out).decode(errors="replace").strip()[:500]
    return CniError(plugin, command, returncode, f"exited with status {returncode}", text)


def _plugin_conf(
    conflist: NetworkConfigList, plugin: Mapping[str, Any], rt: RuntimeConf, prev_result: Any
) -> dict[str, Any]:
    conf = dict(plugin)
    conf["name"] = conflist.name
    conf["cniVersion"] = conflist.cni_version
    if prev_result is not None:
        conf["prevResult"] = prev_result
    else:
        conf.pop("prevResult", None)
    capabilities = plugin.get("capabilities")
    runtime_config = {}
    if isinstance(capabilities, dict):
        runtime_config = {
            cap: rt.capability_args[cap]
            for cap, on in capabilities.items()
            if on and cap in rt.capability_args
        }
    if runtime_config:
        conf["runtimeConfig"] = runtime_config
    else:
        conf.pop("runtimeConfig", None)
    return conf


async def add_network_list(invoker: CniInvoker, conflist: NetworkConfigList, rt: RuntimeConf) -> Any:
    """ADD every plugin in order; the last plugin's result is the attachment's result."""
    result: Any = None
    for plugin in conflist.plugins:
        result = await invoker.run("ADD", _plugin_conf(conflist, plugin, rt, result), rt)
    return result


async def del_network_list(
    invoker: CniInvoker, conflist: NetworkConfigList, rt: RuntimeConf, cached_result: Any
) -> None:
    """DEL every plugin in reverse. Unlike libcni it goes on past a failing plugin so that the
    IPAM release of an earlier plugin still happens, then raises the first failure."""
    prev = None if conflist.cni_version.startswith(_CACHED_DEL_VERSIONS) else cached_result
    failures: list[CniError] = []
    for plugin in reversed(conflist.plugins):
        try:
            await invoker.run("DEL", _plugin_conf(conflist, plugin, rt, prev), rt)
        except CniError as exc:
            failures.append(exc)
    if failures:
        raise failures[0]


async def check_network_list(
    invoker: CniInvoker, conflist: NetworkConfigList, rt: RuntimeConf, cached_result: Any
) -> None:
    """CHECK every plugin in order against the cached ADD result (CNI 0.4.0 and later)."""
    if conflist.disable_check or conflist.cni_version.startswith(_CHECK_VERSIONS):
        return
    if cached_result is None:
        raise CniError(
            conflist.name,
            "CHECK",
            0,
            "no cached ADD result to check against",
            "tear the sandbox down and set it up again",
        )
    for plugin in conflist.plugins:
        await invoker.run("CHECK", _plugin_conf(conflist, plugin, rt, cached_result), rt)
