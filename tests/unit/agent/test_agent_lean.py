"""The agent process stays lean: no server framework, pydantic, rich or server-side shoal layers."""

from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ("litestar", "pydantic", "pydantic_core", "rich", "typer", "uvicorn", "cryptography", "shoal.server",
             "shoal.api", "shoal.store", "shoal.controllers", "shoal.scheduler")

PROBE = """
import sys
sys.modules.setdefault("httpx._main", None)
import shoal.agent.run, shoal.agent.agent, shoal.agent.pods, shoal.agent.images, shoal.agent.identity
import shoal.agent.nodeinfo, shoal.image.pull, shoal.image.layers, shoal.runtime.oci
shoal.agent.run.parser().parse_args(["--server", "https://127.0.0.1:6443", "--data-dir", "/tmp/x"])
print("\\n".join(sorted(sys.modules)))
"""


def test_agent_modules_load_nothing_heavy_or_server_side() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    loaded = out.stdout.split()
    bad = sorted(m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert bad == []
    assert "shoal.agent.pods" in loaded
