"""Fixtures for these tests; the helpers live in runtimelab.py so test modules can import them by a unique name."""

from runtimelab import env  # noqa: F401
