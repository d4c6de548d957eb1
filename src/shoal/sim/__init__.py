"""Simulated fleet members (hollow nodes) that speak the public API like real agents."""

from shoal.sim.nodes import FleetSpec, HollowFleet

__all__ = ["FleetSpec", "HollowFleet"]
