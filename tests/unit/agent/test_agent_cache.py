"""The agent's SQLite cache keeps desired pods and restart tracks across agent restarts."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

from shoal.agent.cache import PodCache
from shoal.agent.restarts import RestartTrack


def pod(uid: str, name: str, image: str = "img:1") -> dict[str, object]:
    return {"apiVersion": "shoal/v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default", "uid": uid},
            "spec": {"containers": [{"name": "c", "image": image}]}}


def test_pods_and_tracks_survive_reopen(tmp_path: Path) -> None:
    cache = PodCache(tmp_path / "agent.db")
    cache.put_pod(pod("u1", "a"))
    cache.put_pod(pod("u2", "b"))
    cache.put_pod(pod("u1", "a", image="img:2"))  # a new version replaces the old
    cache.set_start_time("u1", "2026-01-01T00:00:00Z")
    due = dt.datetime(2026, 1, 1, 0, 0, 5, tzinfo=dt.UTC)
    cache.put_track("u1", "c", RestartTrack(restart_count=4, backoff=8, next_start=due, handled_exit="x"))
    cache.close()

    again = PodCache(tmp_path / "agent.db")
    pods = again.pods()
    assert [p["metadata"]["name"] for p in pods] == ["a", "b"]  # type: ignore[index]
    assert pods[0]["spec"]["containers"][0]["image"] == "img:2"  # type: ignore[index]
    assert again.start_time("u1") == "2026-01-01T00:00:00Z"
    assert again.tracks("u1") == {"c": RestartTrack(restart_count=4, backoff=8, next_start=due, handled_exit="x")}
    again.delete_pod("u1")
    assert [p["metadata"]["uid"] for p in again.pods()] == ["u2"]  # type: ignore[index]
    assert again.tracks("u1") == {}
    assert stat.S_IMODE((tmp_path / "agent.db").stat().st_mode) == 0o600
    again.close()
