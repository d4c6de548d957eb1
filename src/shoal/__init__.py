"""shoal: a lightweight container orchestrator for IoT and edge fleets."""

__version__ = "0.1.0"
__all__ = ["__version__"]
