"""Fixtures for these tests; the helpers live in imagelab.py so test modules can import them by a unique name."""

from imagelab import registry, start_registry  # noqa: F401
