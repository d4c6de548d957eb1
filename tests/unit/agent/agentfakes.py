"""Stand-ins the agent's unit tests share: an ImageService where every image is present."""

from __future__ import annotations

from shoal.agent.images import PreparedImage
from shoal.agent.podspec import ImageDefaults


class Images:
    """Stands in for ImageService: every image is present; pins are kept per owner as the store does."""

    def __init__(self) -> None:
        self.pins: dict[str, str] = {}  # owner → image

    async def prepare(self, name: str, pull_policy: str = "IfNotPresent", *, pod: str | None = None,
                      owner: str | None = None) -> PreparedImage:
        if owner:
            self.pins[owner] = name
        return PreparedImage(name, "sha256:" + "0" * 64, ("/layers/top",), ImageDefaults(cmd=("sleep", "1d")))

    async def release(self, owner: str) -> None:
        self.pins.pop(owner, None)
