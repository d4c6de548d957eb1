"""`shoal registry login|logout|ls` against a real htpasswd registry, and the stored login used by
`shoal image pull/push/build`; registries.yaml mirrors against real registries on loopback."""

from __future__ import annotations

import base64
import json
import socket
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from imagelab import PASSWORD, USER, Registry, busybox_layers

from shoal.image.assemble import create_image
from shoal.image.content import ContentStore

SHOAL = str(Path(sys.executable).parent / "shoal")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The logins file and registries.yaml of this test only (never the machine's)."""
    (tmp_path / "registries.yaml").write_text("")
    values = {"SHOAL_AUTH_FILE": str(tmp_path / "home" / "auth.json"),
              "SHOAL_REGISTRIES_CONFIG": str(tmp_path / "registries.yaml")}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def shoal(*args: str, stdin: str = "") -> tuple[int, str]:
    proc = subprocess.run([SHOAL, *args], input=stdin, capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_login_checks_the_password_stores_it_and_pull_push_build_use_it(
    start_registry: Callable[[bool], Registry], tmp_path: Path, env: dict[str, str]
) -> None:
    reg = start_registry(True)
    authfile = Path(env["SHOAL_AUTH_FILE"])
    code, out = shoal("registry", "login", reg.host, "-u", USER, "--password-stdin", stdin="wrong\n")
    assert code == 1 and f"error: registry {reg.host}: login failed: wrong username or password for user 'edge'" in out
    assert not authfile.exists() and "Traceback" not in out
    code, out = shoal("registry", "login", reg.host, "-u", USER)  # stdin is not a terminal: no prompt
    assert code == 1 and "--password-stdin" in out

    code, out = shoal("registry", "login", reg.host, "-u", USER, "--password-stdin", stdin=f"{PASSWORD}\n")
    assert code == 0 and f"Login Succeeded: {USER}@{reg.host}" in out, out
    assert stat.S_IMODE(authfile.stat().st_mode) == 0o600
    stored = json.loads(authfile.read_text())["auths"][reg.host]["auth"]
    assert base64.b64decode(stored).decode() == f"{USER}:{PASSWORD}"
    assert shoal("registry", "ls")[1].splitlines() == ["REGISTRY" + " " * (len(reg.host) - 5) + "USERNAME",
                                                       f"{reg.host}   {USER}"]

    src = tmp_path / "src"
    create_image(ContentStore(src), "local/bb:1", busybox_layers(), config={"Cmd": ["/bin/sh"]})
    ref = f"{reg.host}/acme/bb:1"
    code, out = shoal("image", "push", "-q", "--root", str(src), "local/bb:1", ref)
    assert code == 0 and out.startswith(f"{ref}: sha256:"), out
    code, out = shoal("image", "pull", "-q", "--root", str(tmp_path / "pulled"), ref)
    assert code == 0 and "4 blobs fetched" in out, out

    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {ref}\nENV GREETING=hi\n")
    code, out = shoal("image", "build", "-q", "--root", str(tmp_path / "built"), "-t", "demo/app:1", str(ctx))
    assert code == 0 and out.startswith("docker.io/demo/app:1: sha256:"), out

    # skopeo reads our file as an --authfile (the format is Docker's)
    proc = subprocess.run(["skopeo", "inspect", "--tls-verify=false", "--authfile", str(authfile), f"docker://{ref}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout)["Name"] == f"{reg.host}/acme/bb", proc.stderr

    code, out = shoal("registry", "logout", reg.host)
    assert code == 0 and out.strip() == f"Removed login credentials for {reg.host}"
    assert shoal("registry", "logout", reg.host)[0] == 1
    code, out = shoal("image", "pull", "-q", "--root", str(tmp_path / "again"), ref)
    assert code == 1 and f"run `shoal registry login {reg.host}`" in out
    code, out = shoal("image", "build", "-q", "--root", str(tmp_path / "built2"), str(ctx))
    assert code == 1 and "requires a login" in out and "Traceback" not in out

    # a Docker config.json given with --authfile
    docker_cfg = tmp_path / "docker" / "config.json"
    docker_cfg.parent.mkdir()
    docker_cfg.write_text(json.dumps({"auths": {f"http://{reg.host}": {"auth": stored}}, "credsStore": "none"}))
    code, out = shoal("image", "pull", "-q", "--root", str(tmp_path / "again"), "--authfile", str(docker_cfg), ref)
    assert code == 0, out


def _dead_host() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def test_mirror_serves_pulls_and_the_origin_is_the_fallback(
    start_registry: Callable[[bool], Registry], tmp_path: Path, env: dict[str, str]
) -> None:
    origin, mirror = start_registry(False), start_registry(False)
    src = tmp_path / "src"
    create_image(ContentStore(src), "local/bb:1", busybox_layers())
    assert shoal("image", "push", "-q", "--root", str(src), "local/bb:1", f"{mirror.host}/acme/bb:1")[0] == 0
    config = Path(env["SHOAL_REGISTRIES_CONFIG"])
    offline = _dead_host()  # the origin is unreachable: only the mirror can serve
    config.write_text(f"mirrors:\n  '{offline}':\n    endpoints: ['http://{_dead_host()}', 'http://{mirror.host}']\n")
    code, out = shoal("image", "pull", "-q", "--root", str(tmp_path / "a"), f"{offline}/acme/bb:1")
    assert code == 0 and f"{offline}/acme/bb:1: sha256:" in out, out

    assert shoal("image", "push", "-q", "--root", str(src), "local/bb:1", f"{origin.host}/acme/bb:2")[0] == 0
    config.write_text(f"mirrors:\n  '{origin.host}':\n    endpoints: ['http://{mirror.host}']\n")
    code, out = shoal("image", "pull", "-q", "--root", str(tmp_path / "b"), f"{origin.host}/acme/bb:2")
    assert code == 0, out  # the mirror has no :2, so the origin served it

    config.write_text("mirrors:\n  docker.io:\n    endpoints: ['mirror.local:5000']\n")
    code, out = shoal("image", "pull", "-q", "--root", str(tmp_path / "c"), f"{origin.host}/acme/bb:2")
    assert code == 1 and "Traceback" not in out
    assert f"error: {config}: mirrors.docker.io.endpoints[0]: 'mirror.local:5000' needs a scheme" in out
