"""schemathesis against /openapi.json: no 5xx, and every response matches the published schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml
from tests.conftest import RunningServer

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


def test_schemathesis_finds_no_server_errors_or_schema_mismatches(server: RunningServer, tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text(yaml.safe_load(server.config_path.read_text())["ca"])
    st = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [str(st), "run", f"{server.url}/openapi.json", "--header", f"Authorization: Bearer {server.token}",
         "--checks", CHECKS, "--tls-verify", str(ca), "--max-examples", "10", "--seed", "1",
         "--exclude-tag", "streaming", "--workers", "2", "--request-timeout", "10",
         "--generation-deterministic", "--max-time", "150"],
        capture_output=True, text=True, timeout=400)
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    assert "No issues found" in result.stdout or " passed" in result.stdout, report
