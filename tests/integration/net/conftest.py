"""The ``lab`` fixture: test hosts as network namespaces (see netlab), cleaned up even on failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.net.netlab import Lab, nsfs_mounts_under, sh


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    made = Lab(tmp_path)
    try:
        yield made
    finally:
        made.cleanup()
    assert nsfs_mounts_under(tmp_path) == [], "namespace mounts left behind"
    root_links = [line.split()[0] for line in sh("ip", "-br", "link").splitlines()]
    assert not [n for n in root_links if n.startswith(("shoal0", "node0", "bwp"))], (
        f"shoal links appeared in the machine's own namespace: {root_links}"
    )
