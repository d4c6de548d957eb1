"""`shoal registry login/logout/ls` as typed: prompts on a terminal, stdin passwords, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoal.cli import registry as registry_cli
from shoal.image.auth import Credentials
from shoal.image.errors import AuthError

runner = CliRunner()


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple[str, Credentials]]:
    """Replace the registry round trip: 'good' is the only accepted password."""
    calls: list[tuple[str, Credentials]] = []

    async def verify(server: str, credentials: Credentials) -> bool:
        calls.append((server, credentials))
        if credentials.password != "good":
            raise AuthError(f"registry {server}: login failed: wrong username or password for user "
                            f"{credentials.username!r}")
        return True

    monkeypatch.setattr(registry_cli, "_verify", verify)
    monkeypatch.setenv("SHOAL_AUTH_FILE", str(tmp_path / "auth.json"))
    return calls


def test_prompts_for_user_and_hidden_password_on_a_terminal(
    checked: list[tuple[str, Credentials]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(registry_cli, "_stdin_is_terminal", lambda: True)
    result = runner.invoke(registry_cli.app, ["login", "https://reg.example:5000/"], input="edge\ngood\n")
    assert result.exit_code == 0, result.output
    assert "Username: edge" in result.output and "Password: \n" in result.output  # not echoed
    assert "Login Succeeded: edge@reg.example:5000" in result.output
    assert checked == [("reg.example:5000", Credentials("edge", "good"))]
    assert list(json.loads((tmp_path / "auth.json").read_text())["auths"]) == ["reg.example:5000"]


def test_wrong_password_is_reported_and_not_saved(checked: list[tuple[str, Credentials]], tmp_path: Path) -> None:
    result = runner.invoke(registry_cli.app, ["login", "reg.example", "-u", "edge", "--password-stdin"], input="bad\n")
    assert result.exit_code == 1
    assert "error: registry reg.example: login failed: wrong username or password for user 'edge'" in result.output
    assert not (tmp_path / "auth.json").exists()


def test_docker_hub_is_the_default_and_ls_logout(checked: list[tuple[str, Credentials]]) -> None:
    result = runner.invoke(registry_cli.app, ["login", "-u", "hubber", "--password-stdin"], input="good")
    assert result.exit_code == 0 and "hubber@docker.io" in result.output
    assert runner.invoke(registry_cli.app, ["ls"]).output.splitlines() == ["REGISTRY    USERNAME",
                                                                           "docker.io   hubber"]
    result = runner.invoke(registry_cli.app, ["logout", "https://index.docker.io/v1/"])
    assert result.exit_code == 0 and "Removed login credentials for docker.io" in result.output
    result = runner.invoke(registry_cli.app, ["logout", "docker.io"])
    assert result.exit_code == 1 and "not logged in to docker.io" in result.output


def test_usage_errors(checked: list[tuple[str, Credentials]]) -> None:
    result = runner.invoke(registry_cli.app, ["login", "reg.example", "--password-stdin"], input="good")
    assert result.exit_code == 2 and "--password-stdin needs --username" in result.output
    result = runner.invoke(registry_cli.app, ["login", "reg.example/team", "-u", "x", "--password-stdin"], input="p")
    assert result.exit_code == 1 and "without a path" in result.output
    assert checked == []
