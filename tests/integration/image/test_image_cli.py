"""`shoal image ...` as a user types it, against a real registry on loopback."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from imagelab import Registry, busybox_layers
from typer.testing import CliRunner

from shoal.cli.image import app
from shoal.image.assemble import create_image
from shoal.image.content import ContentStore

runner = CliRunner()


def sh(root: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "--root", str(root)])
    return result.exit_code, result.output


def test_cli_push_pull_ls_inspect_tag_rm_prune_save_load(registry: Registry, tmp_path: Path) -> None:
    src = tmp_path / "src"
    create_image(ContentStore(src), "local/bb:1", busybox_layers(), config={"Cmd": ["/bin/sh"]})
    ref = f"{registry.host}/acme/bb:1.0"
    code, out = sh(src, "push", "local/bb:1", ref)
    assert code == 0 and out.startswith(f"{ref}: sha256:")

    root = tmp_path / "root"
    code, out = sh(root, "pull", ref)
    assert code == 0, out
    assert f"{ref}: sha256:" in out and "4 blobs fetched" in out
    code, out = sh(root, "ls")
    assert out.splitlines()[0].split() == ["NAME", "DIGEST", "SIZE"]
    assert out.splitlines()[1].startswith(ref)
    code, out = sh(root, "inspect", ref)
    doc = json.loads(out)
    assert doc["config"]["config"]["Cmd"] == ["/bin/sh"] and len(doc["manifest"]["layers"]) == 3
    assert sh(root, "tag", ref, "edge/bb:2")[1].startswith("docker.io/edge/bb:2: sha256:")
    code, out = sh(root, "save", "edge/bb:2", "-o", str(tmp_path / "bb.tar"))
    assert code == 0 and "Saved docker.io/edge/bb:2" in out
    assert sh(root, "rm", ref, "edge/bb:2")[1].splitlines() == [
        f"Untagged: {ref}",
        "Untagged: docker.io/edge/bb:2",
    ]
    code, out = sh(root, "prune")
    assert code == 0 and out.startswith("Deleted 5 blobs")
    assert sh(root, "ls")[1].splitlines() == ["NAME   DIGEST   SIZE"]
    code, out = sh(root, "load", "-i", str(tmp_path / "bb.tar"))
    assert code == 0 and out.strip() == "Loaded image: docker.io/edge/bb:2"


def test_cli_errors_are_one_line_with_exit_codes(registry: Registry, tmp_path: Path) -> None:
    code, out = sh(tmp_path, "pull", "Acme/App")
    assert code == 1 and "error: image reference 'Acme/App'" in out and "lowercase" in out
    assert "Traceback" not in out
    code, out = sh(tmp_path, "pull", f"{registry.host}/does/not-exist:1")
    assert code == 1 and "not found in registry" in out
    code, out = sh(tmp_path, "inspect", "nope:1")
    assert code == 1 and "error: image 'nope:1' is not in the local store" in out
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    code, out = sh(tmp_path, "pull", f"127.0.0.1:{dead}/x:1")
    assert code == 3 and "cannot reach registry" in out
    code, out = sh(tmp_path, "pull", f"{registry.host}/x:1", "--creds", "nocolon")
    assert code == 1 and "USER:PASSWORD" in out
