"""The registrations controller: an EndpointRegistration without a heartbeat for ``ttlSeconds`` is deleted.

A heartbeat is a new value of ``status.renewTime`` (creating the object is the first one). Device
clocks are often wrong (no RTC, no NTP yet), so a heartbeat counts from the moment this controller
sees it, on the server's clock; only a registration seen for the first time (a fresh object, or
every object after a server restart) is judged by its timestamps: ``min(renewTime, now)``, but
never before its ``creationTimestamp``. ``last_heartbeat`` and ``reconcile_registration`` are pure;
``RegistrationExpiry`` remembers the last heartbeat seen per registration (forgotten when the object
goes). An expired registration is deleted with a Warning Event ``Expired``; a live one gets
``status.expiresAt`` (written only when it changes) and a requeue at that moment. It never reads
the store and never touches Endpoints (the endpoints controller does, on the deletion).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from shoal.controllers.actions import Actions, EmitEvent, EventType, Key, Result, Update, delete_of, parse_time, ref_of
from shoal.controllers.cache import Cache
from shoal.controllers.runner import Enqueue, KeyMapper, no_trigger, own_key
from shoal.model import EndpointRegistration

REASON_EXPIRED = "Expired"
REQUEUE_SLACK = 0.05  # seconds past the expiry, so the requeued reconcile never lands a hair early


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The last heartbeat seen: its ``token`` (the renewTime text, or creationTimestamp) and when it counted."""

    token: str
    at: datetime


def precise_time(moment: datetime) -> str:
    """RFC 3339 with microseconds: ``expiresAt`` must not round a live registration into a dead one."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def heartbeat_token(reg: EndpointRegistration) -> str:
    return reg.status.renew_time or reg.metadata.creation_timestamp


def last_heartbeat(reg: EndpointRegistration, seen: Heartbeat | None, now: datetime) -> Heartbeat:
    """The heartbeat that counts for ``reg``, given the one seen before (None: first sight)."""
    token = heartbeat_token(reg)
    if seen is not None and seen.token == token:
        return seen
    if seen is not None:
        return Heartbeat(token, now)  # a new heartbeat: counts when the server sees it
    renewed = parse_time(reg.status.renew_time)
    created = parse_time(reg.metadata.creation_timestamp)
    stamped = renewed if renewed is not None else created
    at = now if stamped is None else min(stamped, now)
    if created is not None and created > at:
        at = min(created, now)
    return Heartbeat(token, at)


def expiry_of(reg: EndpointRegistration, heartbeat: Heartbeat) -> datetime:
    return heartbeat.at + timedelta(seconds=reg.spec.ttl_seconds)


def reconcile_registration(reg: EndpointRegistration, heartbeat: Heartbeat, now: datetime) -> Actions:
    """Delete ``reg`` (with an ``Expired`` event) when its TTL has run out; otherwise keep
    ``status.expiresAt`` current and look again at that moment."""
    if reg.metadata.deletion_timestamp:
        return Actions()
    expires = expiry_of(reg, heartbeat)
    if expires <= now:
        silent = (now - heartbeat.at).total_seconds()
        message = (f"no heartbeat for {silent:.1f}s (ttlSeconds {reg.spec.ttl_seconds}, last at "
                   f"{precise_time(heartbeat.at)}); removed {reg.spec.address} from Service {reg.spec.service}")
        return Actions((delete_of(reg), EmitEvent(ref_of(reg), REASON_EXPIRED, message, EventType.WARNING)))
    requeue = Result((expires - now).total_seconds() + REQUEUE_SLACK)
    stamp = precise_time(expires)
    if reg.status.expires_at == stamp:
        return Actions(result=requeue)
    status = msgspec.structs.replace(reg.status, expires_at=stamp)
    return Actions((Update(msgspec.structs.replace(reg, status=status)),), requeue)


class RegistrationExpiry:
    """Adapts ``reconcile_registration`` to the runner; keys are EndpointRegistrations."""

    name = "registrations"
    kind = "EndpointRegistration"

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], Heartbeat] = {}

    @property
    def watches(self) -> Mapping[str, KeyMapper]:
        return {"EndpointRegistration": own_key}

    def reconcile(self, key: Key, cache: Cache, now: datetime) -> Actions:
        _, namespace, name = key
        reg = cache.get(key)
        if not isinstance(reg, EndpointRegistration):
            self._seen.pop((namespace, name), None)
            return Actions()
        heartbeat = last_heartbeat(reg, self._seen.get((namespace, name)), now)
        self._seen[(namespace, name)] = heartbeat
        return reconcile_registration(reg, heartbeat, now)

    def attach(self, enqueue: Enqueue) -> Callable[[], None]:
        return no_trigger(enqueue)
