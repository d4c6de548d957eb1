"""Client config resolution: --config, then $SHOAL_CONFIG, then ~/.shoal/config.yaml, with clear errors."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from shoal.client import ClientConfig, ConfigError, resolve_path

ADMIN = "server: https://127.0.0.1:6443\nca: ''\ntoken: abc\n"


def test_explicit_path_wins_over_env_and_home(tmp_path: Path) -> None:
    (tmp_path / ".shoal").mkdir()
    (tmp_path / ".shoal" / "config.yaml").write_text(ADMIN)
    chosen = resolve_path("/x/admin.yaml", env={"SHOAL_CONFIG": "/y/env.yaml"}, home=tmp_path)
    assert chosen == Path("/x/admin.yaml")


def test_env_wins_over_home(tmp_path: Path) -> None:
    (tmp_path / ".shoal").mkdir()
    (tmp_path / ".shoal" / "config.yaml").write_text(ADMIN)
    assert resolve_path(None, env={"SHOAL_CONFIG": "/y/env.yaml"}, home=tmp_path) == Path("/y/env.yaml")


def test_home_is_the_fallback(tmp_path: Path) -> None:
    (tmp_path / ".shoal").mkdir()
    (tmp_path / ".shoal" / "config.yaml").write_text(ADMIN)
    assert resolve_path(None, env={}, home=tmp_path) == tmp_path / ".shoal" / "config.yaml"


def test_missing_everywhere_names_all_three_places(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        resolve_path(None, env={}, home=tmp_path)
    message = str(err.value)
    assert "--config" in message
    assert "$SHOAL_CONFIG" in message
    assert str(tmp_path / ".shoal" / "config.yaml") in message


def test_load_reads_server_ca_and_token(tmp_path: Path) -> None:
    file = tmp_path / "admin.yaml"
    file.write_text("server: https://10.0.0.1:6443/\ntoken: ' secret '\n")
    config = ClientConfig.load(file)
    assert config.server == "https://10.0.0.1:6443"
    assert config.token == "secret"
    assert config.source == str(file)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("server: [unclosed", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("token: abc\n", "server is required"),
        ("server: 127.0.0.1:6443\n", "must start with https://"),
        ("server: https://h\nsecret: x\n", "unknown key(s) secret"),
        ("server: https://h\ntoken: 5\n", "token must be a string"),
    ],
)
def test_bad_config_files_name_the_problem(tmp_path: Path, text: str, expected: str) -> None:
    file = tmp_path / "admin.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError) as err:
        ClientConfig.load(file)
    assert expected in str(err.value)
    assert str(file) in str(err.value)


def test_missing_explicit_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        ClientConfig.load(tmp_path / "nope.yaml")


def test_bad_ca_pem_is_reported_not_raised_as_ssl_error() -> None:
    config = ClientConfig(server="https://127.0.0.1:6443", ca="-----BEGIN CERTIFICATE-----\nnope\n", source="a.yaml")
    with pytest.raises(ConfigError, match=r"a\.yaml: ca is not a PEM certificate"):
        config.ssl_context()


def test_https_without_ca_uses_system_roots_and_http_disables_tls() -> None:
    assert isinstance(ClientConfig(server="https://h").ssl_context(), ssl.SSLContext)
    assert ClientConfig(server="http://h").ssl_context() is False
