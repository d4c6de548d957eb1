"""The logins file: Docker/Podman-compatible format, mode 0600, lookups by host and repository."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from shoal.image.auth import Credentials
from shoal.image.credentials import AuthFile, AuthFileError, default_path, normalize_server


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_set_writes_docker_format_with_mode_0600_and_keeps_other_keys(tmp_path: Path) -> None:
    path = tmp_path / "cfg" / "auth.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"credHelpers": {"gcr.io": "gcloud"}, "auths": {"old.example": {"auth": _b64("a:b")}}}))
    store = AuthFile(path)
    store.set("http://127.0.0.1:5000/", Credentials("edge", "pa:ss"))
    doc = json.loads(path.read_text())
    assert doc["credHelpers"] == {"gcr.io": "gcloud"}
    assert doc["auths"]["127.0.0.1:5000"] == {"auth": _b64("edge:pa:ss")}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert store.get("127.0.0.1:5000") == Credentials("edge", "pa:ss")
    assert [(login.server, login.username) for login in store.logins()] == [
        ("127.0.0.1:5000", "edge"), ("old.example", "a")]
    assert store.remove("127.0.0.1:5000") and not store.remove("127.0.0.1:5000")
    assert store.get("127.0.0.1:5000") is None


def test_new_file_and_directory_are_private(tmp_path: Path) -> None:
    store = AuthFile(tmp_path / "new" / "dir" / "auth.json")
    store.set("reg.example", Credentials("u", "p"))
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.parent.stat().st_mode) == 0o700


def test_reads_docker_and_podman_spellings(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": _b64("hubuser:hubpw")},
        "reg.example:5000": {"auth": _b64("everyone:pw")},
        "reg.example:5000/team": {"auth": _b64("team:pw")},
        "plain.example": {"username": "u2", "password": "p2"},
        "helper.example": {},
    }}))
    store = AuthFile(path)
    assert store.get("docker.io", "library/alpine") == Credentials("hubuser", "hubpw")
    assert store.get("reg.example:5000", "team/app") == Credentials("team", "pw")
    assert store.get("reg.example:5000", "other/app") == Credentials("everyone", "pw")
    assert store.get("plain.example") == Credentials("u2", "p2")
    assert store.get("helper.example") is None and store.get("absent.example") is None


def test_normalize_server() -> None:
    assert normalize_server("https://index.docker.io/v1/") == "docker.io"
    assert normalize_server("registry-1.docker.io") == "docker.io"
    assert normalize_server("http://reg:5000") == "reg:5000"
    assert normalize_server("reg:5000/team/") == "reg:5000/team"


def test_malformed_files_are_clear_errors(tmp_path: Path) -> None:
    path = tmp_path / "auth.json"
    path.write_text("{not json")
    with pytest.raises(AuthFileError, match=f"{path}: not valid JSON"):
        AuthFile(path).get("reg")
    path.write_text(json.dumps({"auths": {"reg": {"auth": "%%%"}}}))
    with pytest.raises(AuthFileError, match=r"auths.'reg'.auth is not base64.*shoal registry login reg"):
        AuthFile(path).get("reg")
    path.write_text(json.dumps({"auths": ["reg"]}))
    with pytest.raises(AuthFileError, match="expected"):
        AuthFile(path).logins()


def test_default_path_honours_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_AUTH_FILE", str(tmp_path / "a.json"))
    assert default_path() == tmp_path / "a.json"
    monkeypatch.delenv("SHOAL_AUTH_FILE")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_path() == tmp_path / ".config" / "shoal" / "auth.json"
