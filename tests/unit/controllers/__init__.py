"""Unit tests of shoal.controllers: pure reconcile functions and the runner on an in-memory store."""
