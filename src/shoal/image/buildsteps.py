"""Pure parts of a build: stage state, ARG/ENV scope, and the metadata instructions.

Owns :class:`StageState` (the image config being built, its layers, ARG values in scope, the
rolling cache key) and applying the instructions that only change the config — ENV, ARG, LABEL,
EXPOSE, USER, WORKDIR (its config half), CMD, ENTRYPOINT, HEALTHCHECK, SHELL, STOPSIGNAL,
VOLUME, MAINTAINER — with Docker's semantics. It must not touch files, the store or containers.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shoal.image.dockerfile import DockerfileError, Instruction, expand_words, key_values
from shoal.image.oci import Descriptor

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)$")
_UNITS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def step_key(parent: str, *parts: str) -> str:
    h = hashlib.sha256(parent.encode())
    for part in parts:
        h.update(b"\0" + part.encode())
    return h.hexdigest()


@dataclass
class StageState:
    name: str
    key: str
    layers: list[Descriptor] = field(default_factory=list)
    diff_ids: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)
    shell: tuple[str, ...] = ("/bin/sh", "-c")
    platform: dict[str, str] = field(default_factory=dict)
    cmd_set_here: bool = False

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.config.get("Env") or []:
            k, _, v = item.partition("=")
            out[k] = v
        return out

    def scope(self) -> dict[str, str]:
        """Variables for substitution: ARGs in scope, overridden by ENV."""
        return {**self.args, **self.env()}

    def run_env(self) -> tuple[tuple[str, str], ...]:
        env = {**self.args, **self.env()}
        env.setdefault("PATH", DEFAULT_PATH)
        return tuple(sorted(env.items()))

    def set_env(self, pairs: list[tuple[str, str]]) -> None:
        env = self.env()
        env.update(pairs)
        self.config["Env"] = [f"{k}={v}" for k, v in env.items()]

    def workdir(self) -> str:
        return str(self.config.get("WorkingDir") or "/")

    def record(self, inst: Instruction, empty: bool) -> None:
        entry: dict[str, Any] = {"created_by": inst.original, "created": "1970-01-01T00:00:00Z"}
        if empty:
            entry["empty_layer"] = True
        self.history.append(entry)


def _duration(value: str, what: str, source: str, line: int) -> int:
    m = _DURATION.match(value)
    if not m:
        raise DockerfileError(source, line, f"{what}: {value!r} is not a duration; use e.g. 30s, 1m30s is 90s")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _command(inst: Instruction, state: StageState) -> list[str]:
    if inst.exec_form is not None:
        return list(inst.exec_form)
    return [*state.shell, inst.text]


def declare_arg(inst: Instruction, state_args: dict[str, str], build_args: Mapping[str, str],
                outer: Mapping[str, str], scope: Mapping[str, str], source: str) -> None:
    """ARG NAME[=default]: a build arg wins, then the global value, then the default."""
    for word in expand_words(inst.text, scope, source, inst.line):
        name, eq, default = word.partition("=")
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            raise DockerfileError(source, inst.line, f"ARG {name!r} is not a valid name (letters, digits, _)")
        if name in build_args:
            state_args[name] = build_args[name]
        elif name in outer:
            state_args[name] = outer[name]
        elif eq:
            state_args[name] = default


def apply_metadata(inst: Instruction, state: StageState, build_args: Mapping[str, str],
                   global_args: Mapping[str, str], source: str) -> None:
    """Apply a config-only instruction to ``state`` (WORKDIR's directory is the builder's job)."""
    k, cfg, scope = inst.keyword, state.config, state.scope()
    if k == "ENV":
        state.set_env(key_values(inst, scope, source))
    elif k == "ARG":
        declare_arg(inst, state.args, build_args, global_args, scope, source)
    elif k == "LABEL":
        cfg["Labels"] = {**(cfg.get("Labels") or {}), **dict(key_values(inst, scope, source, legacy=False))}
    elif k == "MAINTAINER":
        state.config.setdefault("Labels", {})["maintainer"] = inst.text
    elif k == "EXPOSE":
        ports = dict(cfg.get("ExposedPorts") or {})
        for word in expand_words(inst.text, scope, source, inst.line):
            port, _, proto = word.partition("/")
            lo, _, hi = port.partition("-")
            if not lo.isdigit() or (hi and not hi.isdigit()) or proto not in ("", "tcp", "udp", "sctp"):
                raise DockerfileError(source, inst.line, f"EXPOSE {word!r}: expected PORT[/tcp|udp], e.g. 8080/tcp")
            for p in range(int(lo), int(hi or lo) + 1):
                ports[f"{p}/{proto or 'tcp'}"] = {}
        cfg["ExposedPorts"] = ports
    elif k == "USER":
        words = expand_words(inst.text, scope, source, inst.line)
        if len(words) != 1:
            raise DockerfileError(source, inst.line, "USER takes one USER[:GROUP], e.g. USER 1000:1000")
        cfg["User"] = words[0]
    elif k == "WORKDIR":
        words = expand_words(inst.text, scope, source, inst.line, split=False)
        cfg["WorkingDir"] = posixpath.normpath(posixpath.join(state.workdir(), words[0] if words else "/"))
    elif k == "CMD":
        cfg["Cmd"] = _command(inst, state)
        state.cmd_set_here = True
    elif k == "ENTRYPOINT":
        cfg["Entrypoint"] = _command(inst, state)
        if not state.cmd_set_here:
            cfg.pop("Cmd", None)  # as Docker does: a new ENTRYPOINT drops the base image's CMD
    elif k == "SHELL":
        assert inst.exec_form is not None
        state.shell = inst.exec_form
    elif k == "STOPSIGNAL":
        cfg["StopSignal"] = expand_words(inst.text, scope, source, inst.line)[0]
    elif k == "VOLUME":
        vols = inst.exec_form if inst.exec_form is not None else expand_words(inst.text, scope, source, inst.line)
        cfg["Volumes"] = {**(cfg.get("Volumes") or {}), **{v: {} for v in vols}}
    elif k == "HEALTHCHECK":
        cfg["Healthcheck"] = healthcheck(inst, state, source)
    else:
        raise DockerfileError(source, inst.line, f"{k} is not a metadata instruction")


def healthcheck(inst: Instruction, state: StageState, source: str) -> dict[str, Any]:
    text = inst.text.strip()
    if text.upper() == "NONE":
        return {"Test": ["NONE"]}
    word, _, rest = text.partition(" ")
    if word.upper() != "CMD" or not rest.strip():
        raise DockerfileError(source, inst.line, "HEALTHCHECK takes [OPTIONS] CMD command, or NONE")
    rest = rest.strip()
    out: dict[str, Any] = {}
    if rest.startswith("["):
        sub = Instruction(inst.line, "CMD", rest, (), None)
        try:
            import json

            argv = json.loads(rest)
            out["Test"] = ["CMD", *argv]
        except ValueError:
            out["Test"] = ["CMD-SHELL", sub.text]
    else:
        out["Test"] = ["CMD-SHELL", rest]
    names = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
             "start-interval": "StartInterval"}
    for flag, value in inst.flags:
        if flag == "retries":
            if not value.isdigit():
                raise DockerfileError(source, inst.line, f"--retries={value!r} must be a whole number")
            out["Retries"] = int(value)
        else:
            out[names[flag]] = _duration(value, f"--{flag}", source, inst.line)
    return out
