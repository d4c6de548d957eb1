"""Every user-facing command answers --help with an example, and never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

COMMANDS = [
    [], ["apply"], ["get"], ["describe"], ["delete"], ["scale"], ["create"], ["logs"], ["exec"], ["version"],
    ["node"], ["node", "cordon"], ["node", "drain"],
    ["image"], ["image", "pull"], ["image", "push"], ["image", "build"], ["image", "ls"], ["image", "save"],
    ["image", "tag"], ["image", "rm"], ["image", "prune"], ["image", "inspect"], ["image", "load"],
    ["server"], ["sim", "nodes"], ["agent"], ["agent", "install"], ["agent", "uninstall"],
    ["cluster", "up"], ["cluster", "down"], ["cluster", "ls"], ["top", "nodes"], ["top", "pods"],
    ["pause"], ["unpause"], ["port-forward"], ["register"], ["node", "uncordon"],
    ["registry", "login"], ["registry", "logout"], ["registry", "ls"], ["secrets", "rotate-key"],
    ["rollout", "status"], ["rollout", "history"], ["rollout", "undo"], ["rollout", "pause"],
    ["rollout", "resume"], ["rollout", "restart"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "shoal")
def test_help(command: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "shoal", *command, "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    text = result.stdout.lower()
    assert "usage" in text
    if command and command not in (["node"], ["image"]):
        assert "example" in text, result.stdout
