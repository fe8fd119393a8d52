"""Records: timestamp normalisation and the JSON Lines form, against the plain formulas they replace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_linkmsg.records import (
    GeneratedMessage,
    Message,
    parse_utc,
    to_utc_iso,
    utc_to_epoch_ms,
)

_MOMENTS = st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9998, 12, 31)).map(
    lambda d: d.replace(tzinfo=UTC)
)


def _reference(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@given(_MOMENTS, st.integers(min_value=-14 * 60, max_value=14 * 60))
def test_to_utc_iso_matches_strftime_for_every_form(moment: datetime, offset_minutes: int) -> None:
    expected = _reference(moment)
    shifted = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    assert to_utc_iso(moment) == expected
    assert to_utc_iso(shifted) == expected
    assert to_utc_iso(moment.replace(tzinfo=None)) == expected  # naive: UTC
    assert to_utc_iso(shifted.isoformat()) == expected
    assert to_utc_iso(expected) == expected  # our own form: unchanged
    assert parse_utc(expected) == moment


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_epoch_ms_round_trips_exactly(ms: int) -> None:
    text = to_utc_iso(ms)
    assert text == _reference(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms))
    assert utc_to_epoch_ms(ms) == ms
    assert utc_to_epoch_ms(text) == ms


def test_epoch_ms_is_not_one_below_through_a_float() -> None:
    # int(dt.timestamp() * 1000) gave 1079337347471 here: a message at since + 1 ms was taken as at since
    assert utc_to_epoch_ms("2004-03-15T07:55:47.472000Z") == 1079337347472
    assert utc_to_epoch_ms(1079337347472) == 1079337347472


def test_odd_strings_of_our_length_take_the_general_path() -> None:
    # 27 characters ending in Z but with an offset inside: not our form, refused as before
    for text in ("2024-01-02T03:04:05.1+0100Z", "2024-13-02T03:04:05.123456Z"):
        try:
            to_utc_iso(text)
        except ValueError:
            continue
        raise AssertionError(f"{text!r} was accepted")


def test_json_line_keeps_key_first_field_order_and_unicode() -> None:
    message = Message(
        vendor="connectsafely",
        account_id="a",
        conversation_id="c",
        message_id="m",
        sent_at="2024-01-02T03:04:05.123456Z",
        direction="inbound",
        text="café \u2028",
        raw={"x": 1},
    )
    line = message.to_json(include_raw=False)
    assert line.startswith('{"key":"connectsafely:a:m","vendor":"connectsafely","account_id":"a"')
    assert "café" in line and '"raw"' not in line and ", " not in line
    assert Message.from_json(message.to_json()).raw == {"x": 1}
    assert Message.from_json(line) == message
    generated = GeneratedMessage(request_id="r", lead_id="l", message_type="t", step=1, status="pending")
    assert GeneratedMessage.from_dict({**generated.to_dict(), "unknown": 1}) == generated
