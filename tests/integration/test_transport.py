"""The shared transport over real HTTP, against the sandbox's fault injection."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgRateLimitedError,
    LinkMsgResponseError,
    LinkMsgValidationError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.hooks.base import parse_reset_time, parse_retry_after
from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook
from airflow_provider_linkmsg.hooks.linkup import LinkupHook

ROUTE = "GET /accounts"


def calls(sandbox, vendor="linkup"):
    return int(sandbox.stats().get("calls", {}).get(f"{vendor} {ROUTE}", 0))


def faults(sandbox):
    return sandbox.stats().get("faults", {})


def test_429_with_retry_after_seconds_waits_at_least_that_long_then_succeeds(sandbox):
    sandbox.set_faults([{"vendor": "linkup", "route": ROUTE, "p_429": 1, "retry_after": "2", "times": 1}])
    hook = LinkupHook()
    started = time.monotonic()
    response = hook.request("GET", "/accounts")
    assert time.monotonic() - started >= 2.0
    assert response.status == 200 and response.data["success"] is True
    assert calls(sandbox) == 2 and faults(sandbox) == {"linkup 429": 1}
    assert hook.retries == 1


def test_429_with_an_http_date_retry_after_is_honoured(sandbox):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=3), usegmt=True)
    sandbox.set_faults([{"vendor": "linkup", "route": ROUTE, "p_429": 1, "retry_after": when, "times": 1}])
    started = time.monotonic()
    LinkupHook().request("GET", "/accounts")
    # the date has one-second resolution: at least 2 s of the 3 must have been waited
    assert time.monotonic() - started >= 2.0
    assert calls(sandbox) == 2


def test_parse_retry_after_forms():
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("0.5") == 0.5
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:10 GMT", now=now.timestamp()) == 10.0
    assert parse_retry_after("Wed, 31 Dec 2025 00:00:10 GMT", now=now.timestamp()) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
    # the header sent twice arrives joined: the longest delta-seconds; nonsense parts count for nothing
    assert parse_retry_after("2, 1") == 2.0 and parse_retry_after("1,2.5") == 2.5
    assert parse_retry_after("nan, 3") == 3.0 and parse_retry_after("-1, nan") is None
    assert parse_retry_after("2, soon") is None


def test_parse_reset_time_forms():
    now = 1_767_261_600.0  # 2026-01-01T10:00:00Z
    assert parse_reset_time("2026-01-01T10:00:30Z", now=now) == 30.0
    assert parse_reset_time("2026-01-01T11:00:30+01:00", now=now) == 30.0
    assert parse_reset_time("2026-01-01T10:00:30.500000+00:00", now=now) == 30.5
    assert parse_reset_time(str(now + 12), now=now) == 12.0  # Unix seconds
    assert parse_reset_time((now + 12) * 1000, now=now) == 12.0  # Unix milliseconds
    assert parse_reset_time("45", now=now) == 45.0  # seconds from now
    assert parse_reset_time("2025-12-31T00:00:00Z", now=now) == 0.0  # past: no wait
    assert parse_reset_time("soon", now=now) is None
    assert parse_reset_time(None) is None and parse_reset_time("") is None and parse_reset_time(True) is None


@pytest.mark.parametrize(
    ("rule", "fault"),
    [({"p_5xx": 1, "status_5xx": 502}, "linkup 5xx"), ({"p_reset": 1}, "linkup reset")],
)
def test_5xx_and_reset_connections_are_retried_and_succeed(sandbox, rule, fault):
    sandbox.set_faults([{"vendor": "linkup", "route": ROUTE, "times": 2, **rule}])
    response = LinkupHook().request("GET", "/accounts")
    assert response.status == 200
    assert faults(sandbox) == {fault: 2} and calls(sandbox) == 3


def test_401_is_raised_at_once_with_exactly_one_request(sandbox, monkeypatch):
    conn = json.loads(sandbox.env()["AIRFLOW_CONN_CONNECTSAFELY_DEFAULT"])
    conn["password"] = "wrong-key-0123456789"
    monkeypatch.setenv("AIRFLOW_CONN_CONNECTSAFELY_DEFAULT", json.dumps(conn))
    hook = ConnectSafelyHook()
    with pytest.raises(LinkMsgAuthError) as err:
        hook.request("GET", "/accounts")
    assert err.value.status == 401 and "connectsafely_default" in str(err.value)
    assert calls(sandbox, "connectsafely") == 1 and hook.http_requests == 1
    assert "wrong-key-0123456789" not in str(err.value)


def test_a_truncated_body_gives_a_typed_error(sandbox):
    sandbox.set_faults([{"vendor": "linkup", "route": ROUTE, "p_truncate": 1}])
    with pytest.raises(LinkMsgResponseError, match="truncated response body") as err:
        LinkupHook(max_retries=2, max_retry_wait=5).request("GET", "/accounts")
    assert isinstance(err.value, LinkMsgVendorError)
    assert faults(sandbox) == {"linkup truncate": 3}


def test_a_truncated_body_once_is_retried_transparently(sandbox):
    sandbox.set_faults([{"vendor": "linkup", "route": ROUTE, "p_truncate": 1, "times": 1}])
    assert LinkupHook().request("GET", "/accounts").status == 200


def test_the_retry_cap_fails_with_how_long_it_waited_and_why(sandbox):
    sandbox.set_faults([{"vendor": "linkup", "route": ROUTE, "p_429": 1, "retry_after": "1"}])
    started = time.monotonic()
    with pytest.raises(LinkMsgRateLimitedError) as err:
        LinkupHook(max_retries=10, max_retry_wait=2.5).request("GET", "/accounts")
    message = str(err.value)
    assert "gave up after 3 attempt(s)" in message
    assert "s of it waiting between retries" in message and "max_retry_wait of 2 s" in message
    assert "RATE_LIMITED" in message and "GET /accounts" in message
    assert time.monotonic() - started >= 2.0


def test_a_retry_after_beyond_the_cap_fails_without_waiting(sandbox):
    sandbox.set_faults([{"vendor": "linkup", "route": ROUTE, "p_429": 1, "retry_after": "3600"}])
    started = time.monotonic()
    with pytest.raises(LinkMsgRateLimitedError, match="asked to wait 3600"):
        LinkupHook(max_retry_wait=60).request("GET", "/accounts")
    assert time.monotonic() - started < 30 and calls(sandbox) == 1


def test_the_client_side_rate_limit_spaces_requests(sandbox, monkeypatch):
    conn = json.loads(sandbox.env()["AIRFLOW_CONN_LINKUP_DEFAULT"])
    conn["extra"].update({"requests_per_second": 20, "burst": 1})
    monkeypatch.setenv("AIRFLOW_CONN_LINKUP_DEFAULT", json.dumps(conn))
    hook = LinkupHook()
    started = time.monotonic()
    for _ in range(11):
        hook.request("GET", "/accounts")
    # 1 token at start, then 10 more at 20 per second: at least half a second
    assert time.monotonic() - started >= 0.45
    assert calls(sandbox) == 11


def test_bad_connection_settings_name_the_field(sandbox, monkeypatch):
    conn = json.loads(sandbox.env()["AIRFLOW_CONN_LINKUP_DEFAULT"])
    conn["extra"]["max_retries"] = "many"
    monkeypatch.setenv("AIRFLOW_CONN_LINKUP_DEFAULT", json.dumps(conn))
    with pytest.raises(LinkMsgValidationError, match="'max_retries' must be a number") as err:
        LinkupHook().request("GET", "/accounts")
    assert err.value.field == "max_retries" and calls(sandbox) == 0


def test_the_api_key_appears_in_no_log_line(sandbox, caplog):
    key = json.loads(sandbox.env()["AIRFLOW_CONN_LINKUP_DEFAULT"])["password"]
    sandbox.set_faults([{"vendor": "linkup", "route": ROUTE, "p_5xx": 1, "times": 1}])
    with caplog.at_level(logging.DEBUG):
        hook = LinkupHook()
        hook.request("GET", "/accounts")
        ok, message = hook.test_connection()
    assert ok, message
    assert caplog.records, "expected the retry to be logged"
    assert all(key not in r.getMessage() for r in caplog.records)
    assert key not in caplog.text


def test_test_connection_is_cheap_and_reports_failure_without_retrying(sandbox, monkeypatch):
    conn = json.loads(sandbox.env()["AIRFLOW_CONN_LINKUP_DEFAULT"])
    conn["password"] = "not-the-right-key"
    monkeypatch.setenv("AIRFLOW_CONN_LINKUP_DEFAULT", json.dumps(conn))
    ok, message = LinkupHook().test_connection()
    assert not ok and "INVALID_API_KEY" in message and "not-the-right-key" not in message
    assert calls(sandbox) == 1
