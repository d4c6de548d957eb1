"""ConfigSource: what the server says about ConfigMaps/Secrets, who is told, what survives a restart."""

from __future__ import annotations

import base64
from pathlib import Path

from shoal.agent.cache import PodCache
from shoal.agent.configenv import ConfigKey, ConfigKind
from shoal.agent.configsource import ConfigSource, config_data

APP = ConfigKey(ConfigKind.CONFIG_MAP, "edge", "app")
CREDS = ConfigKey(ConfigKind.SECRET, "edge", "creds")


def test_config_data_decodes_secret_and_binary_data() -> None:
    secret = {"metadata": {"name": "creds"}, "data": {"pw": base64.b64encode(b"s3cret").decode(), "bad": "%%"}}
    assert config_data(ConfigKind.SECRET, secret) == {"pw": b"s3cret"}
    cm = {"metadata": {"name": "app"}, "data": {"a": "1"}, "binaryData": {"b": base64.b64encode(b"\x00").decode()}}
    assert config_data(ConfigKind.CONFIG_MAP, cm) == {"a": b"1", "b": b"\x00"}


def test_pods_are_told_about_changes_to_what_they_use_only(tmp_path: Path) -> None:
    cache = PodCache(tmp_path / "agent.db")
    try:
        source = ConfigSource(cache)
        told: list[str] = []
        source.watch_pod("u1", frozenset({APP}), lambda: told.append("u1"))
        source.watch_pod("u2", frozenset({CREDS}), lambda: told.append("u2"))
        assert source.namespaces() == {"edge"}
        source.set_listed(ConfigKind.CONFIG_MAP, "edge", {"app": {"a": b"1"}, "other": {"x": b"y"}})
        assert told == ["u1"] and source.lookup(APP) == {"a": b"1"}
        source.set_object(APP, {"a": b"1"})  # unchanged: nobody is woken
        source.set_object(ConfigKey(ConfigKind.CONFIG_MAP, "edge", "other"), {"x": b"z"})
        assert told == ["u1"]
        source.set_object(APP, None)
        assert told == ["u1", "u1"] and source.lookup(APP) is None
    finally:
        cache.close()


def test_referenced_objects_survive_an_agent_restart_and_are_dropped_with_their_pods(tmp_path: Path) -> None:
    cache = PodCache(tmp_path / "agent.db")
    try:
        source = ConfigSource(cache)
        source.watch_pod("u1", frozenset({CREDS}), lambda: None)
        source.set_listed(ConfigKind.SECRET, "edge", {"creds": {"pw": b"s3cret"}, "unused": {"k": b"v"}})
        again = ConfigSource(cache)  # as after a restart, before the server answers
        assert again.lookup(CREDS) == {"pw": b"s3cret"}
        assert again.lookup(ConfigKey(ConfigKind.SECRET, "edge", "unused")) is None  # never cached
        again.forget_pod("u1")
        assert ConfigSource(cache).lookup(CREDS) is None
    finally:
        cache.close()
