"""``shoal agent install``: make this machine a node that survives reboots, as a systemd service.

It validates the agent options with the agent's own parser, writes
``/etc/systemd/system/shoal-agent.service`` (``ExecStart`` = this venv's ``python -m shoal.agent``
with those options, ``Restart=always``, ``KillMode=process`` so containers under conmon outlive
agent restarts, ``Delegate=yes`` for the pods' cgroups) and, when systemd is PID 1 (there is a
``/run/systemd/system``), runs ``systemctl daemon-reload`` and ``systemctl enable --now``. Elsewhere
it prints the unit and the command that starts the agent by hand. The join token goes to
``DATA_DIR/agent.env`` (0600, read as ``SHOAL_TOKEN``), never into the world-readable unit. The
unit rendering and the systemd quoting are pure functions; ``shoal.agent.uninstall`` undoes all
of it. It must not start containers or talk to the server.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from shoal.pki.files import write_private

__all__ = ["UNIT_FILE", "UNIT_NAME", "exec_args", "install_main", "render_unit", "systemd_quote", "systemd_running",
           "unit_args"]

UNIT_NAME = "shoal-agent"
UNIT_FILE = Path(f"/etc/systemd/system/{UNIT_NAME}.service")
ENV_FILE = "agent.env"
_INSTALL_ONLY = ("--token", "--unit-file", "--no-start")

EXAMPLE = f"""example:
  shoal agent install --server https://10.0.0.1:6443 --token "$(cat node-token)" \\
      --data-dir /var/lib/shoal-agent --labels shoal.io/zone=plant-a

Writes {UNIT_FILE} and starts it with systemctl; without systemd
it prints the unit and the command that starts the agent by hand. `shoal agent uninstall` removes
the agent and everything it made.
"""


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir()


def systemd_quote(arg: str) -> str:
    """One ``ExecStart`` word: as is when plain, else double-quoted; ``$`` and ``%`` are escaped for systemd."""
    escaped = arg.replace("%", "%%").replace("$", "$$")
    if escaped and all(c.isalnum() or c in "-_./:=,+@" for c in escaped):
        return escaped
    return '"' + escaped.replace("\\", "\\\\").replace('"', '\\"') + '"'


def unit_args(unit_text: str) -> list[str]:
    """The agent options in a unit's ``ExecStart`` (after ``-m shoal.agent``), as the unit was written."""
    for line in unit_text.splitlines():
        if line.startswith("ExecStart="):
            words = [w.replace("$$", "$").replace("%%", "%") for w in shlex.split(line[len("ExecStart="):])]
            if "shoal.agent" in words:
                return words[words.index("shoal.agent") + 1:]
    return []


def exec_args(argv: Sequence[str], data_dir: Path) -> list[str]:
    """``argv`` without the install-only options, with an absolute ``--data-dir`` (added if missing)."""
    out: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        name = arg.split("=", 1)[0]
        if name in _INSTALL_ONLY or name == "--data-dir":
            i += 2 if name != "--no-start" and "=" not in arg else 1
            continue
        out.append(arg)
        i += 1
    return [*out, "--data-dir", str(data_dir)]


def render_unit(python: str, args: Sequence[str], env_file: Path) -> str:
    exec_start = " ".join(systemd_quote(w) for w in [python, "-m", "shoal.agent", *args])
    return f"""[Unit]
Description=shoal node agent
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
EnvironmentFile=-{env_file}
ExecStart={exec_start}
Restart=always
RestartSec=5
# Containers run under conmon in this unit's cgroup: stopping or restarting the agent must not kill them.
KillMode=process
Delegate=yes
TimeoutStopSec=30
LimitNOFILE=1048576

[Install]
WantedBy=multi-user.target
"""


def _parser(prog: str) -> argparse.ArgumentParser:
    from shoal.agent.run import parser

    p = parser(prog)
    p.description = ("Install the node agent as the systemd service shoal-agent: it joins the cluster on "
                     "first start and comes back after every reboot. Takes every option of `shoal agent`.")
    p.epilog = EXAMPLE
    p.allow_abbrev = False  # "--tok X" must not slip the token into the world-readable unit
    p.add_argument("--no-start", action="store_true", help="write the unit but do not enable or start it")
    p.add_argument("--unit-file", default=str(UNIT_FILE), help=argparse.SUPPRESS)
    return p


def _systemctl(*args: str) -> None:
    done = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise OSError(f"systemctl {' '.join(args)} failed: {(done.stderr or done.stdout).strip()}")


def install_main(argv: Sequence[str], prog: str = "shoal agent install") -> int:
    args = _parser(prog).parse_args(list(argv))
    if not args.server.startswith(("https://", "http://")):
        print(f"error: --server must be a URL like https://10.0.0.1:6443 (got {args.server!r})", file=sys.stderr)
        return 2
    data_dir = Path(args.data_dir).absolute()
    if not args.token and not (data_dir / "identity.json").exists():
        print(f"error: {data_dir} has no node identity yet: pass --token with the server's join token "
              "(node-token in its data dir)", file=sys.stderr)
        return 2
    agent_args = exec_args(argv, data_dir)
    env_file = data_dir / ENV_FILE
    unit = render_unit(sys.executable, agent_args, env_file)
    unit_file = Path(args.unit_file)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(data_dir, 0o700)
        if args.token:
            write_private(env_file, f"SHOAL_TOKEN={args.token}\n".encode())
        unit_file.parent.mkdir(parents=True, exist_ok=True)
        unit_file.write_text(unit)
        os.chmod(unit_file, 0o644)
    except OSError as exc:
        print(f"error: cannot write the agent's files: {exc}; run as root", file=sys.stderr)
        return 3
    print(f"wrote {unit_file}" + (f" and {env_file} (the join token, mode 0600)" if args.token else ""))
    if systemd_running() and not args.no_start:
        try:
            _systemctl("daemon-reload")
            _systemctl("enable", "--now", UNIT_NAME)
        except OSError as exc:
            print(f"error: {exc}; see `journalctl -u {UNIT_NAME}`", file=sys.stderr)
            return 3
        print(f"started {UNIT_NAME}: follow it with `journalctl -fu {UNIT_NAME}`")
        return 0
    why = "--no-start was given" if args.no_start else "systemd is not running here (no /run/systemd/system)"
    command = " ".join(shlex.quote(w) for w in [sys.executable, "-m", "shoal.agent", *agent_args])
    token = f"SHOAL_TOKEN=$(sed -n 's/^SHOAL_TOKEN=//p' {shlex.quote(str(env_file))}) " if args.token else ""
    print(f"{why}; the unit is:\n\n{unit}\nstart the agent by hand with:\n  {token}{command}")
    return 0
