"""Secret rows: sealed with AES-GCM under the primary key, opened by any key of the ring, never plain."""

from __future__ import annotations

import base64
import datetime as dt
import json

import msgspec
import pytest

from shoal.model import ConfigMap, ObjectMeta, Secret
from shoal.store import Keyring, SecretKeyMissing, SecretUnreadable
from shoal.store.secretcodec import RowCodec, kind_decoders

NOW = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)
PLAIN = "hunter2-Zebra-Quokka-7731"
KEY = ("Secret", "default", "db-pass")


def _secret(name: str = "db-pass") -> Secret:
    return Secret(metadata=ObjectMeta(name=name, namespace="default", labels={"app": "db"}),
                  data={"password": base64.b64encode(PLAIN.encode()).decode()})


def _codec(ring: Keyring | None) -> RowCodec:
    return RowCodec(ring, kind_decoders())


def test_round_trip_hides_the_value_and_its_base64() -> None:
    ring = Keyring.generate(NOW, "/d/secrets.key")
    codec = _codec(ring)
    row = codec.encode(KEY, _secret())
    assert PLAIN.encode() not in row
    assert base64.b64encode(PLAIN.encode()) not in row
    assert b"password" not in row  # keys of data, labels and annotations are sealed too
    sealed = json.loads(row)
    assert sealed["kind"] == "Secret"
    assert sealed["encrypted"]["keyId"] == ring.primary
    assert codec.key_id(KEY, row) == ring.primary
    assert codec.decode(KEY, row, "row") == _secret()
    assert codec.plain_seen == 0


def test_each_write_uses_a_fresh_nonce() -> None:
    codec = _codec(Keyring.generate(NOW))
    assert codec.encode(KEY, _secret()) != codec.encode(KEY, _secret())


def test_other_kinds_stay_plain_json() -> None:
    codec = _codec(Keyring.generate(NOW))
    cm = ConfigMap(metadata=ObjectMeta(name="cfg", namespace="default"), data={"a": "b"})
    row = codec.encode(("ConfigMap", "default", "cfg"), cm)
    assert row == msgspec.json.encode(cm)
    assert codec.decode(("ConfigMap", "default", "cfg"), row, "row") == cm


def test_wrong_key_with_the_same_id_is_refused_clearly() -> None:
    ring = Keyring.generate(NOW, "/d/secrets.key")
    row = _codec(ring).encode(KEY, _secret())
    other = Keyring.generate(NOW, "/other/secrets.key")
    doc = json.loads(other.dump())
    doc["primary"] = doc["keys"][0]["id"] = ring.primary
    impostor = Keyring.parse(json.dumps(doc).encode(), "/other/secrets.key")
    with pytest.raises(SecretUnreadable, match=r"does not decrypt with key .* from /other/secrets.key"):
        _codec(impostor).decode(KEY, row, "state.db: Secret db-pass")


def test_unknown_key_id_names_the_key_and_the_file() -> None:
    row = _codec(Keyring.generate(NOW)).encode(KEY, _secret())
    key_id = json.loads(row)["encrypted"]["keyId"]
    with pytest.raises(SecretKeyMissing) as caught:
        _codec(Keyring.generate(NOW, "/d/secrets.key")).decode(KEY, row, "state.db: Secret db-pass")
    assert caught.value.key_ids == (key_id,)
    assert f'key "{key_id}", which is not in /d/secrets.key' in str(caught.value)
    with pytest.raises(SecretKeyMissing, match="not in no key file"):
        _codec(None).decode(KEY, row, "row")


def test_a_row_moved_to_another_name_does_not_open() -> None:
    codec = _codec(Keyring.generate(NOW))
    row = codec.encode(KEY, _secret())
    with pytest.raises(SecretUnreadable, match="damaged"):
        codec.decode(("Secret", "default", "other"), row, "row")


def test_without_a_keyring_secrets_are_plain_and_plain_rows_are_counted() -> None:
    row = _codec(None).encode(KEY, _secret())
    assert row == msgspec.json.encode(_secret())
    sealing = _codec(Keyring.generate(NOW))
    assert sealing.decode(KEY, row, "row") == _secret()
    assert sealing.plain_seen == 1


def test_rotated_ring_opens_old_rows_and_seals_with_the_new_key() -> None:
    ring = Keyring.generate(NOW)
    old_row = _codec(ring).encode(KEY, _secret())
    grown = _codec(ring.rotated(NOW))
    assert grown.decode(KEY, old_row, "row") == _secret()
    new_row = grown.encode(KEY, _secret())
    assert grown.key_id(KEY, new_row) != ring.primary
    with pytest.raises(SecretKeyMissing):
        _codec(ring).decode(KEY, new_row, "row")
