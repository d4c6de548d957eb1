"""`shoal agent install` / `uninstall` without touching the machine: the systemd unit written,
the token kept out of it, quoting that survives a round trip, and refusals with clear messages."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest

from shoal.agent import install
from shoal.agent.install import exec_args, render_unit, unit_args
from shoal.agent.run import main


def test_the_unit_runs_this_python_with_the_agent_options_and_keeps_containers() -> None:
    args = ["--server", "https://10.0.0.1:6443", "--labels", "zone=a b", "--name", "cost$1%", "--data-dir", "/d"]
    unit = render_unit("/opt/venv/bin/python", args, Path("/d/agent.env"))
    lines = unit.splitlines()
    assert 'ExecStart=/opt/venv/bin/python -m shoal.agent --server https://10.0.0.1:6443 --labels "zone=a b" ' \
           '--name "cost$$1%%" --data-dir /d' in lines
    for line in ("KillMode=process", "Delegate=yes", "Restart=always", "EnvironmentFile=-/d/agent.env",
                 "WantedBy=multi-user.target"):
        assert line in lines
    assert unit_args(unit) == args


def test_install_only_options_stay_out_of_exec_start() -> None:
    argv = ["--server", "https://s:1", "--token", "secret", "--data-dir", "rel", "--token=x", "--no-start",
            "--unit-file", "/tmp/u", "--labels", "a=b"]
    assert exec_args(argv, Path("/abs/rel")) == ["--server", "https://s:1", "--labels", "a=b", "--data-dir", "/abs/rel"]


def test_install_without_systemd_writes_the_unit_and_prints_how_to_start(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(install, "systemd_running", lambda: False)
    unit, data = tmp_path / "unit" / "shoal-agent.service", tmp_path / "data"
    code = main(["install", "--server", "https://10.0.0.1:6443", "--token", "shoal-abc::s3cret", "--data-dir",
                 str(data), "--unit-file", str(unit), "--cgroup-parent", "/edge"])
    out = capsys.readouterr().out
    assert code == 0
    assert "systemd is not running here" in out and "start the agent by hand" in out
    assert f"{sys.executable} -m shoal.agent --server https://10.0.0.1:6443" in out
    text = unit.read_text()
    assert "s3cret" not in text and "--cgroup-parent /edge" in text
    assert (data / "agent.env").read_text() == "SHOAL_TOKEN=shoal-abc::s3cret\n"
    assert stat.S_IMODE((data / "agent.env").stat().st_mode) == 0o600


def test_install_and_uninstall_refuse_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install", "--server", "https://s:1", "--data-dir", str(tmp_path / "new"),
                 "--unit-file", str(tmp_path / "u")]) == 2
    assert "pass --token" in capsys.readouterr().err
    assert main(["install", "--server", "s:1", "--token", "t", "--unit-file", str(tmp_path / "u")]) == 2
    assert "--server must be a URL" in capsys.readouterr().err
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    assert main(["uninstall", "--data-dir", str(tmp_path / "home"), "--unit-file", str(tmp_path / "u"),
                 "--yes"]) == 2
    assert "does not look like a shoal agent data dir" in capsys.readouterr().err
    assert (tmp_path / "home" / "notes.txt").exists()


def test_uninstall_asks_before_removing_anything(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "identity.json").write_text("{}")
    done = subprocess.run([sys.executable, "-m", "shoal.agent", "uninstall", "--data-dir", str(data),
                           "--unit-file", str(tmp_path / "u")], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60)
    assert done.returncode == 2 and "pass --yes" in done.stderr
    assert (data / "identity.json").exists()


@pytest.mark.parametrize("entry", [["shoal", "agent"], [sys.executable, "-m", "shoal.agent"]])
def test_help_of_both_entries_shows_an_example(entry: list[str]) -> None:
    shoal = Path(sys.executable).with_name("shoal")
    command = [str(shoal), "agent"] if entry[0] == "shoal" else entry
    for sub in ("install", "uninstall"):
        done = subprocess.run([*command, sub, "--help"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and "example:" in done.stdout and f"agent {sub} " in done.stdout, done.stderr
