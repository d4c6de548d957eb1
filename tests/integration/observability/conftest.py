"""Fixtures for monitoring tests: a real shoal server, a loopback registry with busybox-static, and
an agent environment, all from the agent tests' helpers and all removed afterwards, even on failure."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "agent"))

from agentenv import agent_env, image, server  # noqa: F401 - the agent tests' fixtures
