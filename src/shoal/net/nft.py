"""Running the host's network tools (``nft``, ``sysctl``) for the nftables tables shoal keeps, with a
time limit and errors that say what to install. ``prefix`` runs them elsewhere, e.g.
``("nsenter", "--net=/run/netns/x")``. It builds no rules (``services`` and ``policy`` do).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from shoal.net.protocol import NetworkError

__all__ = ["NFT_TIMEOUT_SECONDS", "run_tool"]

NFT_TIMEOUT_SECONDS = 30


def run_tool(prefix: Sequence[str], argv: Sequence[str], stdin: str | None = None,
             error: type[NetworkError] = NetworkError) -> subprocess.CompletedProcess[str]:
    """Run ``prefix + argv``; ``error`` when the tool is missing or does not finish in time."""
    try:
        return subprocess.run([*prefix, *argv], input=stdin, capture_output=True, text=True,
                              timeout=NFT_TIMEOUT_SECONDS)
    except FileNotFoundError as exc:
        raise error(f"{exc.filename} not found; install nftables (apt-get install nftables)") from None
    except subprocess.TimeoutExpired:
        raise error(f"{' '.join(argv[:3])} did not finish in {NFT_TIMEOUT_SECONDS}s") from None
