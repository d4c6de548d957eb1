"""Fixtures for these tests; the helpers live in wasmlab.py so test modules can import them by a unique name."""

from wasmlab import lab  # noqa: F401
