"""The OCI runtime driver: runc under conmon, overlayfs rootfs, config.json with secure defaults.

``OciDriver`` is the public entry; ``build_config`` and ``HostFacts`` are exposed for tests and
tools that want to see the config a pod would get. Nothing here is imported by ``shoal.runtime``
itself, and nothing here may import server-side layers.
"""

from shoal.runtime.oci.driver import OciDriver
from shoal.runtime.oci.spec import DEFAULT_CAPABILITIES, HostFacts, build_config, cgroups_path

__all__ = ["DEFAULT_CAPABILITIES", "HostFacts", "OciDriver", "build_config", "cgroups_path"]
