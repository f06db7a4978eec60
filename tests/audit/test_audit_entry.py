"""The canonical entry, the guard against secret values, and the keyed fingerprint."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.entry import ZERO_HASH, check_details, encode_entry
from audit.fingerprint import fingerprint
from audit.synthetic import SYNTHETIC_FIELDS, SYNTHETIC_START, synthetic_entries
from audit.verify import _slow_fields, entry_fields, entry_hash
from rotator.errors import KeyMaterialError
from rotator.secret import Secret

T = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make(**overrides: Any) -> bytes:
    fields: dict[str, Any] = {
        "seq": 1,
        "prev": ZERO_HASH,
        "time": T,
        "actor": "alice",
        "event_type": "rotation.step",
    }
    fields.update(overrides)
    return encode_entry(**fields)


def test_entry_is_canonical_sorted_compact_utf8() -> None:
    stored = make(details={"b": 1, "a": "café"}, secret="S", host="h", tool_version="1")
    assert (
        stored
        == (
            '{"actor":"alice","details":{"a":"café","b":1},"environment":null,"host":"h",'
            f'"prev":"{ZERO_HASH}","rotation_id":null,"secret":"S","seq":1,'
            '"time":"2026-03-01T12:00:00.000000Z","tool_version":"1","type":"rotation.step","v":1}'
        ).encode()
    )
    assert b"\n" not in make(details={"note": "two\nlines"})


def test_time_is_written_in_utc_with_z() -> None:
    paris = T.astimezone(timezone(timedelta(hours=1)))
    assert json.loads(make(time=paris))["time"] == "2026-03-01T12:00:00.000000Z"
    with pytest.raises(ValueError):
        make(time=datetime(2026, 3, 1))


def test_entry_hash_is_domain_separated_over_prev_and_bytes() -> None:
    stored = make()
    expected = hashlib.sha256(b"rotator-audit-entry-v1\x00" + bytes(32) + stored).hexdigest()
    assert entry_hash(ZERO_HASH, stored) == expected


@pytest.mark.parametrize(
    "details",
    [
        {"new": Secret("hunter2")},
        {"nested": {"list": [1, Secret("hunter2")]}},
        {"value": "sk_live_123"},
        {"Client-Secret": "abc"},
        {"token": "abc"},
        {"when": datetime(2026, 1, 1, tzinfo=UTC)},
        {"nan": float("nan")},
        {1: "non-string key"},
    ],
)
def test_unsafe_details_are_refused(details: dict[Any, Any]) -> None:
    with pytest.raises(TypeError):
        make(details=details)


def test_secret_in_a_field_is_refused_and_never_shown() -> None:
    with pytest.raises(TypeError) as caught:
        make(actor=Secret("hunter2"))
    assert "hunter2" not in str(caught.value)
    with pytest.raises(TypeError):
        make(secret=Secret("hunter2"))


def test_fingerprints_may_sit_under_value_like_keys() -> None:
    check_details({"value": "hmac-sha256:" + "0" * 64, "token": None, "step": "stage"})


def test_fingerprint_is_keyed_hmac() -> None:
    value = Secret("re_live_abc")
    one, two = b"k" * 32, b"j" * 32
    expected = hmac.new(one, b"re_live_abc", hashlib.sha256).hexdigest()
    assert fingerprint(one, value) == "hmac-sha256:" + expected
    assert fingerprint(one, value) != fingerprint(two, value)
    assert fingerprint(one, value) != "hmac-sha256:" + hashlib.sha256(b"re_live_abc").hexdigest()
    assert fingerprint(one, value) != fingerprint(one, Secret("re_live_abd"))


def test_fingerprint_refuses_weak_keys_and_plain_strings() -> None:
    with pytest.raises(KeyMaterialError):
        fingerprint(b"short", Secret("x"))
    with pytest.raises(TypeError):
        fingerprint(b"k" * 32, "plain")  # type: ignore[arg-type]


def test_synthetic_template_is_the_canonical_form() -> None:
    (_, stored, digest), *_ = synthetic_entries(2)
    expected = encode_entry(
        seq=1,
        prev=ZERO_HASH,
        time=SYNTHETIC_START + timedelta(seconds=1),
        rotation_id="rot-0",
        **SYNTHETIC_FIELDS,  # type: ignore[arg-type]
    )
    assert stored == expected
    assert digest == entry_hash(ZERO_HASH, stored)


json_leaf = st.none() | st.booleans() | st.integers() | st.text()
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(
    details=st.dictionaries(
        st.text().filter(lambda k: k.lower().replace("-", "_") not in {"value", "token"}),
        json_value,
        max_size=4,
    ),
    seq=st.integers(min_value=1, max_value=10**12),
    prev=st.binary(min_size=32, max_size=32),
    text=st.text(),
)
def test_fast_field_extraction_agrees_with_json(
    details: dict[str, Any], seq: int, prev: bytes, text: str
) -> None:
    try:
        stored = make(
            seq=seq, prev=prev.hex(), details=details, actor=text, tool_version=text, secret=text
        )
    except TypeError:
        return  # a generated key happened to look like a credential name
    assert entry_fields(stored) == (seq, prev) == _slow_fields(stored)
