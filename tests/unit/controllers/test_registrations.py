"""Registration expiry: the heartbeat that counts (server clock, device clocks distrusted), the TTL
math, the Expired deletion and the ``status.expiresAt`` stamp; and, through the runner, a registration
without heartbeats is deleted with an Event."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from shoal.controllers import Controller
from shoal.controllers.actions import Delete, EmitEvent, EventType, Update
from shoal.controllers.registrations import (
    REASON_EXPIRED,
    REQUEUE_SLACK,
    Heartbeat,
    RegistrationExpiry,
    last_heartbeat,
    precise_time,
    reconcile_registration,
)
from shoal.model import EndpointRegistration, EndpointRegistrationSpec, EndpointRegistrationStatus, Event, ObjectMeta

from .helpers import T0, eventually, run, running
from .memstore import MemStore


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def reg(*, ttl: int = 30, renew: datetime | None = None, created: datetime = T0, expires: str = "",
        deleting: bool = False) -> EndpointRegistration:
    return EndpointRegistration(
        metadata=ObjectMeta(name="plc-7", namespace="default", uid="r-uid", resource_version="9",
                            creation_timestamp=stamp(created), deletion_timestamp=stamp(T0) if deleting else ""),
        spec=EndpointRegistrationSpec(service="plc", address="192.0.2.7", port=502, ttl_seconds=ttl),
        status=EndpointRegistrationStatus(renew_time=stamp(renew) if renew else "", expires_at=expires))


def test_first_sight_uses_the_timestamps_but_never_the_future_or_before_creation() -> None:
    now = T0 + timedelta(seconds=100)
    assert last_heartbeat(reg(created=T0), None, now).at == T0  # no renewTime: the creation is the first heartbeat
    assert last_heartbeat(reg(renew=T0 + timedelta(seconds=90)), None, now).at == T0 + timedelta(seconds=90)
    assert last_heartbeat(reg(renew=T0 + timedelta(hours=5)), None, now).at == now  # clock ahead: capped at now
    old_clock = reg(renew=datetime(1970, 1, 1, tzinfo=UTC), created=T0 + timedelta(seconds=95))
    assert last_heartbeat(old_clock, None, now).at == T0 + timedelta(seconds=95)  # a fresh object lives its ttl


def test_a_new_renew_time_counts_when_seen_and_a_repeated_one_does_not() -> None:
    seen = Heartbeat(stamp(T0), T0)
    later = T0 + timedelta(seconds=20)
    same = reg(renew=T0)
    assert last_heartbeat(same, seen, later) is seen
    behind = reg(renew=datetime(1970, 1, 1, tzinfo=UTC))  # a device without a real-time clock
    assert last_heartbeat(behind, seen, later) == Heartbeat(behind.status.renew_time, later)


def test_live_registration_gets_expires_at_and_a_requeue_at_that_moment() -> None:
    now = T0 + timedelta(seconds=10)
    actions = reconcile_registration(reg(ttl=30), Heartbeat("x", T0), now)
    [update] = actions.steps
    assert isinstance(update, Update) and isinstance(update.obj, EndpointRegistration)
    assert update.obj.status.expires_at == "2026-11-23T08:00:30.000000Z"
    assert update.obj.metadata.resource_version == "9"  # compare-and-swap against a racing heartbeat
    assert actions.result.requeue_after == 20 + REQUEUE_SLACK
    unchanged = reconcile_registration(update.obj, Heartbeat("x", T0), now)
    assert unchanged.steps == () and unchanged.result.requeue_after == 20 + REQUEUE_SLACK


def test_expired_registration_is_deleted_with_an_expired_event() -> None:
    actions = reconcile_registration(reg(ttl=3), Heartbeat("x", T0), T0 + timedelta(seconds=3))
    delete, event = actions.steps
    assert delete == Delete("EndpointRegistration", "default", "plc-7", "9")
    assert isinstance(event, EmitEvent) and event.reason == REASON_EXPIRED and event.type == EventType.WARNING
    assert "no heartbeat for 3.0s (ttlSeconds 3" in event.message and "Service plc" in event.message
    assert reconcile_registration(reg(ttl=3, deleting=True), Heartbeat("x", T0), T0 + timedelta(hours=1)).steps == ()


@given(ttl=st.integers(1, 86400), elapsed_ms=st.integers(0, 90_000_000))
def test_deleted_exactly_when_the_ttl_has_passed(ttl: int, elapsed_ms: int) -> None:
    now = T0 + timedelta(milliseconds=elapsed_ms)
    actions = reconcile_registration(reg(ttl=ttl), Heartbeat("x", T0), now)
    expired = any(isinstance(s, Delete) for s in actions.steps)
    assert expired == (elapsed_ms >= ttl * 1000)
    if not expired:
        remaining = actions.result.requeue_after
        assert remaining is not None and abs(remaining - (ttl - elapsed_ms / 1000) - REQUEUE_SLACK) < 1e-6


def test_reconciler_remembers_heartbeats_and_forgets_deleted_objects() -> None:
    from shoal.controllers.cache import Cache

    cache = Cache()
    expiry = RegistrationExpiry()
    key = ("EndpointRegistration", "default", "plc-7")
    cache.put(reg(ttl=10, renew=T0))
    first = expiry.reconcile(key, cache, T0 + timedelta(seconds=5))
    assert first.result.requeue_after == 5 + REQUEUE_SLACK
    cache.put(reg(ttl=10, renew=datetime(1970, 1, 1, tzinfo=UTC)))  # a heartbeat from a wrong clock
    renewed = expiry.reconcile(key, cache, T0 + timedelta(seconds=8))
    assert renewed.result.requeue_after == 10 + REQUEUE_SLACK
    assert any(isinstance(s, Delete) for s in expiry.reconcile(key, cache, T0 + timedelta(seconds=18)).steps)
    cache.remove(key)
    assert expiry.reconcile(key, cache, T0 + timedelta(seconds=19)).steps == ()
    assert precise_time(T0) == "2026-11-23T08:00:00.000000Z"


def test_runner_deletes_a_silent_registration_with_an_event() -> None:
    async def main() -> None:
        def clock() -> datetime:
            return datetime.now(UTC)

        store = MemStore(clock)
        async with running([Controller(RegistrationExpiry(), store, clock, workers=1)]):
            created = await store.create(msgspec.structs.replace(reg(ttl=1), metadata=ObjectMeta(
                name="plc-7", namespace="default")))
            assert isinstance(created, EndpointRegistration)
            await eventually(lambda: any(isinstance(o, EndpointRegistration) and o.status.expires_at
                                         for o in store.objects("EndpointRegistration")), what="expiresAt")
            await eventually(lambda: store.objects("EndpointRegistration") == [], timeout=3, what="expiry")
            events = [e for e in store.objects("Event") if isinstance(e, Event)]
            assert [(e.reason, e.involved_object.name, e.type) for e in events] == [
                (REASON_EXPIRED, "plc-7", "Warning")]

    run(main)
