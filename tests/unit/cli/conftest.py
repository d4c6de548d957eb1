"""Fixtures for CLI tests: the real typer app talking to an in-memory API through the real client."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from shoal.cli import common
from shoal.cli.main import build_app
from shoal.client import Client, ClientConfig
from shoal.client.fake import FakeApi

Shoal = Callable[..., Result]


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


@pytest.fixture
def shoal(fake: FakeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Shoal:
    """``shoal("get", "pods")`` runs the CLI as a user types it and returns the click Result."""
    config = tmp_path / "admin.yaml"
    config.write_text("server: http://fake.test\nca: ''\ntoken: test-token\n")
    monkeypatch.setenv("SHOAL_CONFIG", str(config))
    monkeypatch.setenv("HOME", str(tmp_path))

    def client_for(cfg: ClientConfig) -> Client:
        return Client(cfg, transport=fake.transport())

    monkeypatch.setattr(common, "make_client", client_for)

    def invoke(*args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(build_app(args), list(args), input=input, catch_exceptions=False)

    return invoke
