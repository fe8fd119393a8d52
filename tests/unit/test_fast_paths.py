"""
The per-message fast paths of a retrieval, against the general code they skip: a record's JSON line, the
pagination fingerprint, the timestamp rule of the schemas. Same results, same errors.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from airflow_provider_linkmsg.hooks.pagination import _CANONICAL, _fingerprint
from airflow_provider_linkmsg.records import _EXACT_MS, GeneratedMessage, Message, _format_utc, to_utc_iso
from airflow_provider_linkmsg.schemas.types import _EARLIEST_MS, _checked_timestamp, _timestamp

#: what ``to_json`` replaced: the dict through the staging encoder
_REFERENCE_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
_OPTIONAL_TEXT = st.none() | st.text()
_RAW = st.none() | st.dictionaries(st.text(max_size=8), _JSON, max_size=5)


@given(
    st.text(),
    st.text(),
    st.text(),
    _OPTIONAL_TEXT,
    _OPTIONAL_TEXT,
    st.text(),
    st.booleans(),
    st.sampled_from(["inbound", "outbound"]),
    _RAW,
    st.booleans(),
)
def test_message_json_line_is_the_dicts_json(
    account: str,
    message_id: str,
    text: str,
    sender_id: str | None,
    sender_name: str | None,
    message_type: str,
    attachments: bool,
    direction: str,
    raw: dict | None,
    include_raw: bool,
) -> None:
    message = Message(
        vendor="connectsafely",
        account_id=account,
        conversation_id=f"urn:li:{text[:3]}",
        message_id=message_id,
        sent_at="2024-01-01T00:00:00.000000Z",
        direction=direction,  # type: ignore[arg-type]
        sender_id=sender_id,
        sender_name=sender_name,
        text=text,
        message_type=message_type,
        has_attachments=attachments,
        raw=raw,
    )
    expected = _REFERENCE_LINE.encode(message.to_dict(include_raw=include_raw))
    assert message.to_json(include_raw=include_raw) == expected


@given(st.integers(), _OPTIONAL_TEXT, st.none() | st.integers() | st.text(), _RAW, st.booleans())
def test_generated_message_json_line_is_the_dicts_json(
    step: int, text: str | None, notice: object, raw: dict | None, include_raw: bool
) -> None:
    record = GeneratedMessage(
        request_id="r",
        lead_id="l",
        message_type="first_follow_up",
        step=step,
        status="generated",
        text=text,
        notice=notice,  # type: ignore[arg-type]
        raw=raw,
    )
    expected = _REFERENCE_LINE.encode(record.to_dict(include_raw=include_raw))
    assert record.to_json(include_raw=include_raw) == expected


@given(_JSON)
def test_fingerprint_is_the_digest_of_the_canonical_json(item: object) -> None:
    text = _CANONICAL.encode(item)
    assert _fingerprint(item) == hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


def test_fingerprint_ignores_key_order_and_sees_every_change() -> None:
    item = {"messageUrn": "m1", "sentAt": 1_700_000_000_000, "text": "hi", "attachments": [{"a": 1, "b": 2}]}
    reordered = {
        "attachments": [{"b": 2, "a": 1}],
        "text": "hi",
        "sentAt": 1_700_000_000_000,
        "messageUrn": "m1",
    }
    assert _fingerprint(item) == _fingerprint(reordered)
    for changed in (
        {"text": "hi!"},
        {"sentAt": 1_700_000_000_001},
        {"attachments": []},
        {"isSentByOwner": True},
    ):
        assert _fingerprint({**item, **changed}) != _fingerprint(item)
    assert _fingerprint({**item, "sentAt": True}) != _fingerprint({**item, "sentAt": 1})


def _outcome(check, value: object) -> tuple[str, object]:
    try:
        return "ok", check(value)
    except (ValueError, OverflowError) as error:
        return type(error).__name__, str(error)


_NOW_MS = int(time.time() * 1000)
_TIMESTAMPS = (
    st.integers(min_value=_EARLIEST_MS - 10**6, max_value=_EARLIEST_MS + 10**6)
    | st.integers(min_value=_NOW_MS - 10**6, max_value=_NOW_MS + 2 * 86_400_000)
    | st.integers()
    | st.integers().map(str)
    | st.floats()
    | st.booleans()
    | st.none()
    | st.text()
    | st.datetimes().map(lambda d: d.isoformat())
    | st.datetimes().map(lambda d: d.isoformat() + "Z")
)


@given(_TIMESTAMPS)
@example(_EARLIEST_MS)
@example(_EARLIEST_MS - 1)
@example(_EARLIEST_MS // 1000)
@example(10**400)
@example(True)
def test_timestamp_fast_path_answers_like_the_general_rule(value: object) -> None:
    assert _outcome(_timestamp, value) == _outcome(_checked_timestamp, value)


@pytest.mark.parametrize(
    "value",
    [_EARLIEST_MS - 1, 1_700_000_000, _NOW_MS + 3 * 86_400_000],
    ids=["before-2003", "epoch-seconds", "three-days-ahead"],  # stable: every xdist worker collects these
)
def test_timestamp_fast_path_still_refuses_out_of_range_ms(value: int) -> None:
    with pytest.raises(ValueError, match=r"epoch seconds|before 2003|far future"):
        _timestamp(value)


@given(
    st.integers(min_value=0, max_value=_EXACT_MS - 1)
    | st.integers(min_value=_EARLIEST_MS, max_value=_NOW_MS + 10**11)
    | st.integers()
)
@example(0)
@example(_EXACT_MS - 1)
@example(_EXACT_MS)
@example(-1)
@example(86_399_999)
def test_epoch_ms_text_is_what_fromtimestamp_writes(value: int) -> None:
    try:
        expected = _format_utc(datetime.fromtimestamp(value / 1000, tz=UTC))
    except (ValueError, OverflowError, OSError) as error:
        with pytest.raises(type(error)):
            to_utc_iso(value)
        return
    assert to_utc_iso(value) == expected
