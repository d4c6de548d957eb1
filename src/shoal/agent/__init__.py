"""The node agent: joins the cluster, registers its Node, runs its pods with a runtime driver.

Submodules are imported by name (``shoal.agent.agent``, ``.pods``, ``.identity``, ...) so that
``shoal agent --help`` stays cheap; the CLI entry is ``shoal.agent.cli.app``. This package must
not import server-side layers (litestar, pydantic, shoal.server/api/store/controllers/scheduler).
"""

from __future__ import annotations

__all__ = ["agent", "cache", "cli", "dns", "edgefacts", "edgestatus", "eviction", "identity", "imageload", "images",
           "install", "metrics", "netwatch", "nodeinfo", "podnet", "pods", "podspec", "policywatch", "portforward",
           "probe_checks", "probes", "restarts", "run", "status", "tunnel", "uninstall"]
