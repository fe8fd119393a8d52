"""
A transport that cannot be turned against its user, over real HTTP, for every vendor hook: redirects and
links to another origin, keys echoed in error bodies, waits the vendor asks for past the cap, bodies too
large, inflating or trickling.
"""

from __future__ import annotations

import gzip
import json
import logging
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_provider_linkmsg.exceptions import (
    LinkMsgError,
    LinkMsgForeignOriginError,
    LinkMsgRateLimitedError,
    LinkMsgResponseTooLargeError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook
from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook
from airflow_provider_linkmsg.hooks.linkup import LinkupHook
from tests.fixtures.hostile import endless, send, trickle

#: each vendor hook, and a cheap GET route of its API
VENDORS = {
    "koneksi": (KoneksiHook, "/account"),
    "connectsafely": (ConnectSafelyHook, "/accounts"),
    "linkedapi": (LinkedApiHook, "/account"),
    "linkup": (LinkupHook, "/accounts"),
}
#: the request headers that carry a vendor's secrets
KEY_HEADERS = {"api-key", "authorization", "linked-api-token", "identification-token", "x-api-key"}


def _conn(vendor: str) -> dict:
    import os

    return json.loads(os.environ[f"AIRFLOW_CONN_{vendor.upper()}_DEFAULT"])


def _secrets(vendor: str) -> list[str]:
    conn = _conn(vendor)
    extras = [v for k, v in conn["extra"].items() if any(w in k for w in ("key", "token", "secret"))]
    return [conn["password"], *extras]


def _point_at(monkeypatch, vendor: str, url: str, **extra) -> None:
    conn = _conn(vendor)
    conn["extra"].update({"base_url": url, **extra})
    monkeypatch.setenv(f"AIRFLOW_CONN_{vendor.upper()}_DEFAULT", json.dumps(conn))


@pytest.fixture
def vendor_at(sandbox, hostile_factory, monkeypatch):
    """``vendor_at(vendor, **extra)``: the vendor's connection pointed at a new hostile server."""

    def make(vendor: str, **extra):
        server = hostile_factory()
        _point_at(monkeypatch, vendor, server.url + "/api", **extra)
        return server

    return make


# ---- redirects and links ---------------------------------------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_to_another_origin_sends_nothing_there(vendor, status, vendor_at, hostile_factory):
    other = hostile_factory()
    server = vendor_at(vendor)
    server.answer = lambda seen, h: send(h, status, Location=f"{other.url}/steal?token=x")
    hook_class, _ = VENDORS[vendor]
    with pytest.raises(LinkMsgForeignOriginError) as err:
        hook_class().request("POST", "/anything", json_body={"secret": "body"}, max_retries=2)
    assert err.value.location == other.url and "/steal" not in str(err.value)
    assert other.url in str(err.value) and "token=x" not in str(err.value)  # the origin only
    assert other.received == []  # no header, no body: nothing at all
    assert len(server.received) == 1  # and not retried


def test_same_origin_redirects_keep_method_and_body_only_for_307_and_308(vendor_at):
    server = vendor_at("linkup")

    def answer(seen, h):
        if seen.path == "/api/a":
            send(h, 307, Location="/api/b")
        elif seen.path == "/api/b":
            send(h, 303, Location="/api/c")
        else:
            send(h, 200, b'{"ok": true}', Content_Type="application/json")

    server.answer = answer
    assert LinkupHook().request("POST", "/a", json_body={"n": 1}).data == {"ok": True}
    assert [(s.method, s.path, s.body) for s in server.received] == [
        ("POST", "/api/a", b'{"n": 1}'),
        ("POST", "/api/b", b'{"n": 1}'),
        ("GET", "/api/c", b""),
    ]


def test_a_redirect_loop_on_the_same_origin_ends(vendor_at):
    server = vendor_at("linkup")
    server.answer = lambda seen, h: send(h, 302, Location="/api/again")
    with pytest.raises(LinkMsgVendorError, match="more than 3 redirects"):
        LinkupHook().request("GET", "/accounts", max_retries=0)
    assert len(server.received) == 4


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_link_to_another_origin_is_refused(vendor, sandbox, hostile_factory):
    other = hostile_factory()
    hook_class, _ = VENDORS[vendor]
    with pytest.raises(LinkMsgForeignOriginError, match="outside the connection's origin"):
        hook_class().request("GET", f"{other.url}/account/results/abc")
    assert other.received == []


def test_a_linked_api_result_link_on_another_host_is_never_fetched(sandbox, hostile_factory):
    other = hostile_factory()
    handle = {"kind": "result_links", "jobs": [f"{other.url}/account/results/h1"], "outcomes": []}
    with pytest.raises(LinkMsgForeignOriginError):
        LinkedApiHook().check_job(handle)
    assert other.received == []


# ---- echoed keys -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("status", [400, 401, 500])
def test_a_key_echoed_by_the_vendor_reaches_no_exception_log_or_connection_test(
    vendor, status, vendor_at, caplog
):
    server = vendor_at(vendor)

    def echo(seen, h):
        keys = " ".join(v for k, v in seen.headers.items() if k.lower() in KEY_HEADERS)
        body = {"error": f"invalid request for key {keys}", "message": f"key was {keys}"}
        send(h, status, json.dumps(body).encode(), Content_Type="application/json")

    server.answer = echo
    hook_class, route = VENDORS[vendor]
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(LinkMsgError) as err:
            hook_class(max_retries=1, max_retry_wait=5).request("GET", route)
        ok, message = hook_class().test_connection()
    assert not ok
    assert any(h.lower() in KEY_HEADERS for h in server.received[0].headers), "the server saw the keys"
    texts = {"exception": str(err.value), "connection test": message, "log": caplog.text}
    for secret in _secrets(vendor):
        leaked = [name for name, text in texts.items() if secret in text]
        assert leaked == [], f"{vendor}'s secret leaked into {leaked}"
    assert "***" in str(err.value)


# ---- bounded waits ---------------------------------------------------------------------------------------
#: the connection's cap on waits (s) in the Retry-After test: far below the vendor's 3600 s, long enough to
#: tell "waited the cap" from "did not wait", short enough not to hold the suite for half a minute
RETRY_CAP = 8.0
#: scheduling slack on a loaded machine (load 7+ on 2 cores): still two orders of magnitude below 3600 s
LOAD_SLACK = 20.0


def test_retry_after_3600_fails_the_call_and_the_next_call_proceeds_within_the_cap(sandbox, monkeypatch):
    for vendor in VENDORS:
        conn = _conn(vendor)
        conn["extra"]["max_retry_wait"] = RETRY_CAP
        monkeypatch.setenv(f"AIRFLOW_CONN_{vendor.upper()}_DEFAULT", json.dumps(conn))
    sandbox.set_faults(
        [
            {"vendor": v, "route": f"GET {r}", "p_429": 1, "retry_after": "3600", "times": 1}
            for v, (_, r) in VENDORS.items()
        ]
    )

    def run(vendor):
        hook_class, route = VENDORS[vendor]
        started = time.monotonic()
        with pytest.raises(LinkMsgRateLimitedError, match="asked to wait 3600"):
            hook_class().request("GET", route)
        first = time.monotonic() - started
        assert hook_class().request("GET", route).status == 200  # another hook: the same shared limiter
        return first, time.monotonic() - started

    with ThreadPoolExecutor(4) as pool:
        timings = dict(zip(VENDORS, pool.map(run, VENDORS), strict=True))
    for vendor, (first, both) in timings.items():
        # failing at once: well under the cap the call would have slept (3600 s capped to RETRY_CAP)
        assert first < RETRY_CAP / 2, (
            f"{vendor}: the call past the cap should fail at once, took {first:.1f} s"
        )
        # the next call honoured the pause (capped), and did not wait the vendor's 3600 s
        assert both >= RETRY_CAP * 0.98, (
            f"{vendor}: the next call went out after {both:.1f} s, inside the pause"
        )
        assert both < RETRY_CAP + LOAD_SLACK, (
            f"{vendor}: the next call waited {both:.1f} s, past max_retry_wait"
        )


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("value", ["inf", "Infinity", "1e400"])
def test_an_infinite_retry_after_fails_at_once(vendor, value, sandbox):
    hook_class, route = VENDORS[vendor]
    sandbox.set_faults(
        [{"vendor": vendor, "route": f"GET {route}", "p_429": 1, "retry_after": value, "times": 1}]
    )
    started = time.monotonic()
    with pytest.raises(LinkMsgRateLimitedError, match="asked to wait inf"):
        hook_class(max_retry_wait=8).request("GET", route)
    assert time.monotonic() - started < 6  # at once, not after the 8 s cap (load slack)
    assert hook_class(max_retry_wait=8).request("GET", route).status == 200
    assert time.monotonic() - started < 8 + 8  # the connection paused no longer than the cap (load slack)


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("value", ["nan", "-5"])
def test_a_nonsense_retry_after_falls_back_to_backoff(vendor, value, sandbox):
    hook_class, route = VENDORS[vendor]
    sandbox.set_faults(
        [{"vendor": vendor, "route": f"GET {route}", "p_429": 1, "retry_after": value, "times": 1}]
    )
    hook = hook_class(max_retry_wait=20)
    started = time.monotonic()
    assert hook.request("GET", route).status == 200
    assert hook.retries == 1 and time.monotonic() - started < 10  # back-off, not the 20 s cap (load slack)


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_far_future_reset_time_fails_at_once_and_pauses_nobody_past_the_cap(vendor, vendor_at):
    server = vendor_at(vendor, max_retry_wait=2)
    calls = []

    def answer(seen, h):
        calls.append(seen.path)
        if len(calls) > 1:
            return send(h, 200, b"{}", Content_Type="application/json")
        body = {"error": "rate limited", "holdUntil": "2099-01-01T00:00:00Z"}
        headers = {} if vendor == "connectsafely" else {"Retry_After": "Thu, 01 Jan 2099 00:00:00 GMT"}
        send(h, 429, json.dumps(body).encode(), Content_Type="application/json", **headers)

    server.answer = answer
    hook_class, route = VENDORS[vendor]
    started = time.monotonic()
    with pytest.raises(LinkMsgRateLimitedError, match="past the max_retry_wait"):
        hook_class().request("GET", route)
    first = time.monotonic() - started
    hook_class().request("GET", route)
    second = time.monotonic() - started - first
    # the first call does not wait at all; the next waits the limiter's pause, capped at max_retry_wait (2 s)
    assert first < 5 and second < 5 and len(calls) == 2, (first, second)


# ---- bounded bodies --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """256 MiB of spaces, gzipped to about 250 KB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (1 << 20)
    return b"".join([*(packer.compress(block) for _ in range(256)), packer.flush()])


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_gzip_bomb_stops_at_the_cap(vendor, vendor_at, gzip_bomb):
    server = vendor_at(vendor)  # the default cap: 64 MiB
    server.answer = lambda seen, h: send(
        h, 200, gzip_bomb, Content_Type="application/json", Content_Encoding="gzip"
    )
    hook_class, route = VENDORS[vendor]
    with pytest.raises(LinkMsgResponseTooLargeError, match="max_response_bytes"):
        hook_class().request("GET", route)
    assert len(server.received) == 1  # not retried


def test_a_small_gzip_body_is_still_decoded(vendor_at):
    server = vendor_at("linkup")
    body = gzip.compress(json.dumps({"data": "x" * 5000}).encode())
    server.answer = lambda seen, h: send(
        h, 200, body, Content_Type="application/json", Content_Encoding="gzip"
    )
    assert LinkupHook().request("GET", "/accounts").data == {"data": "x" * 5000}


@pytest.mark.parametrize("vendor", VENDORS)
def test_an_oversized_body_stops_at_the_cap(vendor, vendor_at):
    server = vendor_at(vendor, max_response_bytes=1 << 20)
    server.answer = lambda seen, h: endless(h, limit=512 << 20)
    hook_class, route = VENDORS[vendor]
    started = time.monotonic()
    with pytest.raises(LinkMsgResponseTooLargeError, match=f"max_response_bytes \\({1 << 20} bytes"):
        hook_class().request("GET", route)
    assert time.monotonic() - started < 5


def test_a_declared_length_past_the_cap_is_refused_before_reading(vendor_at):
    server = vendor_at("linkup")
    server.answer = lambda seen, h: send(
        h, 200, b"", Content_Type="application/json", Content_Length=512 << 20
    )
    with pytest.raises(LinkMsgResponseTooLargeError, match=f"{512 << 20} bytes declared"):
        LinkupHook().request("GET", "/accounts")


#: the read timeout of the trickle tests plus scheduling slack on a loaded machine; a trickle that the
#: deadline does not cut lasts 60 s (body: 300 bytes) or 40 s (head: ~200 bytes), one byte per 0.2 s
TRICKLE_BOUND = 2 + 8.0


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_trickled_body_ends_within_the_read_timeout(vendor, vendor_at):
    server = vendor_at(vendor, read_timeout=2)
    server.answer = lambda seen, h: trickle(h, size=300, every=0.2)
    hook_class, route = VENDORS[vendor]
    started = time.monotonic()
    with pytest.raises(LinkMsgVendorError, match="read timeout"):
        hook_class(max_retries=0).request("GET", route)
    assert time.monotonic() - started < TRICKLE_BOUND


# ---- the environment, resolved once ----------------------------------------------------------------------
def test_proxies_from_the_environment_are_honoured_and_resolved_once(sandbox, hostile_factory, monkeypatch):
    import requests

    proxy = hostile_factory()
    proxy.answer = lambda seen, h: send(h, 200, b'{"via": "proxy"}', Content_Type="application/json")
    _point_at(monkeypatch, "linkup", "http://vendor.invalid/api")
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    lookups = []
    real = requests.utils.get_environ_proxies

    def counted(*args, **kwargs):
        lookups.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(requests.utils, "get_environ_proxies", counted)
    monkeypatch.setattr(requests.sessions, "get_environ_proxies", counted)
    hook = LinkupHook()
    for _ in range(5):
        assert hook.request("GET", "/accounts").data == {"via": "proxy"}
    assert [s.path for s in proxy.received] == ["http://vendor.invalid/api/accounts"] * 5
    assert len(lookups) == 1 and hook.session.trust_env is False


# ---- the adversarial review's findings (issue 13, F1-F8) -------------------------------------------------
def _backslash(evil, good) -> str:
    """A Location urllib.parse places on ``good`` while urllib3 (so requests) sends it to ``evil``."""
    return f"{evil.url}\\@{good.url.split('//', 1)[1]}/api/next"


@pytest.mark.parametrize("vendor", VENDORS)
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_backslash_location_sends_nothing_to_the_host_requests_would_reach(
    vendor, status, vendor_at, hostile_factory
):
    evil = hostile_factory()
    server = vendor_at(vendor)
    server.answer = lambda seen, h: send(h, status, Location=_backslash(evil, server))
    hook_class, route = VENDORS[vendor]
    with pytest.raises(LinkMsgForeignOriginError, match="backslash"):
        if vendor == "linkup":  # a paid POST: its body must not go there either
            hook_class().request("POST", "/messages", json_body={"text": "PAID"}, idempotent=False)
        else:
            hook_class().request("GET", route)
    assert evil.received == []
    assert len(server.received) == 1


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.1:{evil}\\@127.0.0.1:{good}/",
        "http://127.0.0.1:{evil}\t@127.0.0.1:{good}/",
        "http://127.0.0.1:{evil}\x00@127.0.0.1:{good}/",
        "http://127.0.0.1:{good}@127.0.0.1:{evil}/",
        "http://user:pw@127.0.0.1:{good}/",
        " http://127.0.0.1:{good}/",
        "/\\127.0.0.1:{evil}/",
        "http:\\\\127.0.0.1:{evil}/",
    ],
)
def test_check_origin_refuses_what_the_parsers_read_differently(location):
    from airflow_provider_linkmsg.hooks.transport.http import check_origin

    url = location.format(evil=2222, good=1111)
    with pytest.raises(LinkMsgForeignOriginError) as err:
        check_origin(url, ("http", "127.0.0.1", 1111), {"vendor": "linkup"}, "a redirect")
    assert "pw" not in str(err.value)


def test_a_backslash_result_link_is_never_fetched(sandbox, hostile_factory):
    evil = hostile_factory()
    good = LinkedApiHook().conn_params.base_url
    link = f"{evil.url}\\@{good.split('//', 1)[1]}/account/results/1"
    with pytest.raises(LinkMsgForeignOriginError):
        LinkedApiHook().check_job({"kind": "result_links", "jobs": [link]})
    assert evil.received == []


@pytest.mark.parametrize("link", ["@127.0.0.1:{evil}/results/1", ".evil.example/results/1", "results/1"])
def test_a_linked_api_result_link_without_scheme_is_refused(link, sandbox, hostile_factory, monkeypatch):
    evil = hostile_factory()
    good = hostile_factory()
    good.answer = lambda seen, h: send(
        h,
        200,
        json.dumps(
            {"status": "processing", "process": {"resultLink": link.format(evil=evil.server.server_port)}}
        ).encode(),
        Content_Type="application/json",
    )
    _point_at(monkeypatch, "linkedapi", good.url, api="seed")  # like https://api.linkedapi.io: no path
    handle = LinkedApiHook().synchronize(["https://www.linkedin.com/in/someone"])
    assert handle["jobs"] == [link.format(evil=evil.server.server_port)]
    with pytest.raises(LinkMsgForeignOriginError, match="nothing was sent"):
        LinkedApiHook().check_job(handle)
    assert evil.received == []
    assert [s.path for s in good.received] == ["/account/conversations.synchronize"]


@pytest.mark.parametrize("vendor", VENDORS)
def test_a_key_across_the_shortening_cut_leaks_no_prefix(vendor, vendor_at):
    server = vendor_at(vendor)
    secret = _secrets(vendor)[0]

    def echo(seen, h):  # the key straddles the 300-character cut of the error text
        body = {"error": "x" * (300 - len(secret) // 2) + secret}
        send(h, 400, json.dumps(body).encode(), Content_Type="application/json")

    server.answer = echo
    hook_class, route = VENDORS[vendor]
    with pytest.raises(LinkMsgError) as err:
        hook_class(max_retries=0).request("GET", route)
    message = hook_class().test_connection()[1]
    for text in (str(err.value), message):
        assert secret[:6] not in text, f"a prefix of {vendor}'s key leaked: {text[-80:]!r}"


def test_linked_api_vendor_text_in_answers_and_outcomes_is_redacted(vendor_at):
    server = vendor_at("linkedapi", api="seed")
    secrets = _secrets("linkedapi")
    key = secrets[0]
    answers = iter(
        [
            {"status": "weird", "echo": key},  # unexpected answer {data}
            {"status": "error", "error": {"errorType": f"bad-{key}", "message": "x" * 290 + key}},
            {
                "status": "complete",
                "completion": {
                    "conversations": [
                        {"person": "https://www.linkedin.com/in/a", "result": {"success": False,
                         "error": {"errorType": f"e-{key}", "message": f"no: {key}"}}}
                    ]
                },
            },
        ]
    )  # fmt: skip
    server.answer = lambda seen, h: send(
        h, 200, json.dumps(next(answers)).encode(), Content_Type="application/json"
    )
    texts = []
    for _ in range(2):
        with pytest.raises(LinkMsgError) as err:
            LinkedApiHook().synchronize(["https://www.linkedin.com/in/a"])
        texts += [str(err.value), str(err.value.code)]
    handle = LinkedApiHook().synchronize(["https://www.linkedin.com/in/a"])
    texts.append(json.dumps(handle))
    for text in texts:
        assert key[:6] not in text, text[-120:]


@pytest.mark.parametrize(
    "encode",
    [
        "quote",
        "quote_plus",
        "base64",
        "basic",
        "html",
    ],
)
def test_encoded_forms_of_an_echoed_key_are_masked(encode, vendor_at, monkeypatch):
    import base64
    import html
    from urllib.parse import quote, quote_plus

    key = "lk+ADV13/secret=key0123456789"
    conn = _conn("linkup")
    conn["password"] = key
    monkeypatch.setenv("AIRFLOW_CONN_LINKUP_DEFAULT", json.dumps(conn))
    server = vendor_at("linkup")
    form = {
        "quote": quote(key, safe=""),
        "quote_plus": quote_plus(key),
        "base64": base64.b64encode(key.encode()).decode(),
        "basic": base64.b64encode(f"someone:{key}".encode()).decode()[12:],
        "html": html.escape(key).replace("+", "&#43;").replace("/", "&#x2F;"),
    }[encode]
    server.answer = lambda seen, h: send(h, 400, f"<p>bad key {form}</p>".encode())
    with pytest.raises(LinkMsgError) as err:
        LinkupHook(max_retries=0).request("GET", "/accounts")
    message = LinkupHook().test_connection()[1]
    for text in (str(err.value), message):
        assert form not in text and key not in text, text


def test_a_400_digit_hold_until_fails_at_once_typed(vendor_at):
    server = vendor_at("connectsafely", max_retry_wait=30)
    big = b"1" + b"0" * 400
    server.answer = lambda seen, h: send(h, 429, b'{"error": "slow", "holdUntil": ' + big + b"}")
    started = time.monotonic()
    with pytest.raises(LinkMsgRateLimitedError, match="asked to wait inf"):
        ConnectSafelyHook().request("GET", "/accounts")
    assert time.monotonic() - started < 10  # at once, not after the 30 s cap (load slack)


@pytest.mark.parametrize("vendor", VENDORS)
def test_trickled_headers_end_within_the_read_timeout(vendor, vendor_at):
    from tests.fixtures.hostile import trickle_head

    server = vendor_at(vendor, read_timeout=2)
    server.answer = lambda seen, h: trickle_head(h)
    hook_class, route = VENDORS[vendor]
    started = time.monotonic()
    with pytest.raises(LinkMsgVendorError, match="read timeout"):
        hook_class(max_retries=0).request("GET", route)
    assert time.monotonic() - started < TRICKLE_BOUND


def test_redirect_hops_share_one_deadline(vendor_at):
    server = vendor_at("linkup", read_timeout=2)

    def slow_hop(seen, h):
        time.sleep(1.2)
        send(h, 302, Location="/api/again")

    server.answer = slow_hop
    started = time.monotonic()
    with pytest.raises(LinkMsgVendorError, match="read timeout"):
        LinkupHook(max_retries=0).request("GET", "/accounts")
    # without one deadline each hop had its own 2 s: four hops answered (4.8 s), then "more than 3 redirects"
    # (not a read timeout: the match above fails), and a third hop was asked for
    assert time.monotonic() - started < TRICKLE_BOUND and len(server.received) == 2  # the match proves it too


def test_a_netrc_never_replaces_the_vendors_auth(vendor_at, tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password NETRC-SECRET\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    server = vendor_at("connectsafely")
    ConnectSafelyHook().request("GET", "/accounts")
    assert server.received[0].headers["Authorization"] == f"Bearer {_secrets('connectsafely')[0]}"


def test_one_hooks_pause_never_holds_another_past_its_own_cap(vendor_at):
    server = vendor_at("connectsafely", requests_per_second=1, burst=5)
    answers = iter([429])
    server.answer = lambda seen, h: send(
        h, next(answers, 200), b"[]", Content_Type="application/json", Retry_After="3600"
    )
    with pytest.raises(LinkMsgRateLimitedError):
        ConnectSafelyHook(max_retry_wait=20).request("GET", "/accounts")
    started = time.monotonic()
    assert ConnectSafelyHook(max_retry_wait=2).request("GET", "/accounts").status == 200
    assert time.monotonic() - started < 10  # not held for the other hook's 20 s (load slack)


def test_a_huge_zod_error_is_shortened(vendor_at):
    server = vendor_at("connectsafely")
    issues = [{"path": ["q"], "message": "x" * 1000} for _ in range(5000)]
    body = json.dumps({"error": {"name": "ZodError", "issues": issues}}).encode()
    server.answer = lambda seen, h: send(h, 400, body, Content_Type="application/json")
    with pytest.raises(LinkMsgError) as err:
        ConnectSafelyHook().request("GET", "/accounts")
    assert len(str(err.value)) < 1000
