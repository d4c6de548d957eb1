"""The secrets key file: what it round-trips, how rotation grows and prunes it, how bad files are named."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from shoal.store import Keyring, KeyringError

NOW = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)
SOURCE = "/data/secrets.key"


def test_dump_and_parse_round_trip() -> None:
    ring = Keyring.generate(NOW, SOURCE).rotated(NOW)
    again = Keyring.parse(ring.dump(), SOURCE)
    assert again.primary == ring.primary
    assert [(k.id, k.key, k.created) for k in again.keys] == [(k.id, k.key, k.created) for k in ring.keys]
    assert again.primary_key.created == "2026-11-23T15:00:00Z"
    assert len(again.primary_key.key) == 32


def test_rotation_adds_a_new_primary_and_pruning_keeps_it() -> None:
    ring = Keyring.generate(NOW)
    grown = ring.rotated(NOW)
    assert grown.primary != ring.primary
    assert grown.ids == (ring.primary, grown.primary)
    assert grown.get(ring.primary) == ring.primary_key
    pruned = grown.only(set())
    assert pruned.ids == (grown.primary,)


def test_key_material_never_shows_in_repr() -> None:
    ring = Keyring.generate(NOW)
    encoded = base64.b64encode(ring.primary_key.key).decode()
    assert encoded not in repr(ring)
    assert repr(ring.primary_key.key) not in repr(ring)


def _doc(**changes: object) -> bytes:
    doc = json.loads(Keyring.generate(NOW).dump())
    key = doc["keys"][0]
    for field, value in changes.items():
        if field.startswith("key_"):
            key[field.removeprefix("key_")] = value
        else:
            doc[field] = value
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("text", "expected"), [
    (b"not json at all", "is not a shoal secrets key file"),
    (b"[1, 2]", 'expected an object with "primary" and "keys"'),
    (_doc(keys=[]), '"keys" must be a non-empty list'),
    (_doc(primary="nope"), '"primary" must be the id of one of its keys'),
    (_doc(extra=1), 'unknown field "extra"'),
    (_doc(key_key="***not base64***"), "keys[0].key is not base64"),
    (_doc(key_key=base64.b64encode(b"short").decode()), "keys[0].key holds 5 bytes; an AES-256 key is 32 bytes"),
    (_doc(key_id="bad id/with slash"), "keys[0].id must be"),
    (_doc(key_created=5), "keys[0].created must be a timestamp string"),
])
def test_bad_files_are_named_with_the_field(text: bytes, expected: str) -> None:
    with pytest.raises(KeyringError) as caught:
        Keyring.parse(text, SOURCE)
    assert SOURCE in str(caught.value)
    assert expected in str(caught.value)


def test_duplicate_key_ids_are_refused() -> None:
    doc = json.loads(Keyring.generate(NOW).dump())
    doc["keys"].append(dict(doc["keys"][0]))
    with pytest.raises(KeyringError, match=r"keys\[1\]\.id .* appears twice"):
        Keyring.parse(json.dumps(doc).encode(), SOURCE)
