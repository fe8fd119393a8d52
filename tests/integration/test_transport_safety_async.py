"""
The async twins the triggers call (Koneksi ``aretrieve_messages``, Linked API ``acheck_job``) over real HTTP
against a hostile server: no redirect or link to another origin is followed, bodies too large, inflating
or trickling end within their limits as typed errors, and a wait past the cap fails at once without
pausing the connection past it.
"""

from __future__ import annotations

import json
import time
import zlib

import pytest

from airflow_provider_linkmsg.exceptions import (
    LinkMsgError,
    LinkMsgForeignOriginError,
    LinkMsgRateLimitedError,
    LinkMsgResponseTooLargeError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook
from airflow_provider_linkmsg.sandbox.koneksi import SEED_001_ID
from tests.fixtures.hostile import endless, send, trickle

HANDLE = {"kind": "workflows", "jobs": ["wf-1"], "outcomes": []}
#: the hook class of each vendor, the async twin a trigger calls, and the route it reaches
TWINS = {
    "koneksi": (
        KoneksiHook,
        lambda hook: hook.aretrieve_messages(SEED_001_ID),
        "/messages/retrieve_messages",
    ),
    "linkedapi": (LinkedApiHook, lambda hook: hook.acheck_job(HANDLE), "/workflows/wf-1"),
}


def _point_at(monkeypatch, vendor: str, url: str, **extra) -> None:
    import os

    conn = json.loads(os.environ[f"AIRFLOW_CONN_{vendor.upper()}_DEFAULT"])
    conn["extra"].update({"base_url": url, **extra})
    monkeypatch.setenv(f"AIRFLOW_CONN_{vendor.upper()}_DEFAULT", json.dumps(conn))


@pytest.fixture
def vendor_at(sandbox, hostile_factory, monkeypatch):
    def make(vendor: str, **extra):
        server = hostile_factory()
        _point_at(monkeypatch, vendor, server.url + "/api", **extra)
        return server

    return make


async def _twin(vendor: str, **hook_kwargs):
    hook_class, twin, _ = TWINS[vendor]
    hook = hook_class(**hook_kwargs)
    try:
        return await twin(hook)
    finally:
        await hook.aclose()


@pytest.mark.parametrize("vendor", TWINS)
@pytest.mark.parametrize("status", [302, 307])
async def test_a_redirect_to_another_origin_sends_nothing_there(vendor, status, vendor_at, hostile_factory):
    other = hostile_factory()
    server = vendor_at(vendor)
    server.answer = lambda seen, h: send(h, status, Location=f"{other.url}/steal?token=x")
    with pytest.raises(LinkMsgForeignOriginError) as err:
        await _twin(vendor, max_retries=2)
    assert (
        err.value.location == other.url and "/steal" not in str(err.value) and "token=x" not in str(err.value)
    )
    assert other.received == [] and len(server.received) == 1


async def test_a_linked_api_result_link_on_another_host_is_never_fetched(sandbox, hostile_factory):
    other = hostile_factory()
    handle = {"kind": "result_links", "jobs": [f"{other.url}/account/results/h1"], "outcomes": []}
    hook = LinkedApiHook()
    try:
        with pytest.raises(LinkMsgForeignOriginError, match="outside the connection's origin"):
            await hook.acheck_job(handle)
    finally:
        await hook.aclose()
    assert other.received == []


async def test_a_koneksi_link_to_another_origin_is_refused(sandbox, hostile_factory):
    other = hostile_factory()
    hook = KoneksiHook()
    try:
        with pytest.raises(LinkMsgForeignOriginError):
            await hook.arequest("GET", f"{other.url}/messages/retrieve_messages")
    finally:
        await hook.aclose()
    assert other.received == []


#: the cap of the wait-past-the-cap test, and the slack a loaded machine (CI runs two suites on 2 cores) needs
CAP, SLACK = 10.0, 5.0


@pytest.mark.parametrize("vendor", TWINS)
async def test_a_wait_past_the_cap_fails_at_once_and_the_next_call_proceeds_within_it(vendor, vendor_at):
    server = vendor_at(vendor, max_retry_wait=CAP)
    calls = []

    def answer(seen, h):
        calls.append(seen.path)
        if len(calls) > 1:
            return send(h, 200, b"{}", Content_Type="application/json")
        send(h, 429, b'{"error": "slow down"}', Content_Type="application/json", Retry_After="3600")

    server.answer = answer
    hook_class, twin, route = TWINS[vendor]
    first_hook, second_hook = hook_class(), hook_class()  # two triggers of one connection
    started = time.monotonic()
    try:
        with pytest.raises(LinkMsgRateLimitedError, match="asked to wait 3600"):
            await twin(first_hook)
        first = time.monotonic() - started
        assert (await second_hook.arequest("GET", route)).status == 200  # the shared limiter, paused <= CAP
        second = time.monotonic() - started - first
    finally:
        await first_hook.aclose()
        await second_hook.aclose()
    # "at once" against waiting the cap, "within it" against the 3600 s asked: both with load slack
    assert first < CAP - SLACK and second < CAP + SLACK and len(calls) == 2, (first, second)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """256 MiB of spaces, gzipped to about 250 KB."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * (1 << 20)
    return b"".join([*(packer.compress(block) for _ in range(256)), packer.flush()])


@pytest.mark.parametrize("vendor", TWINS)
async def test_a_gzip_bomb_stops_at_the_cap(vendor, vendor_at, gzip_bomb):
    server = vendor_at(vendor, max_response_bytes=8 << 20)
    server.answer = lambda seen, h: send(
        h, 200, gzip_bomb, Content_Type="application/json", Content_Encoding="gzip"
    )
    with pytest.raises(LinkMsgResponseTooLargeError, match=f"max_response_bytes \\({8 << 20} bytes"):
        await _twin(vendor)
    assert len(server.received) == 1  # not retried


@pytest.mark.parametrize("vendor", TWINS)
async def test_an_oversized_body_stops_at_the_cap(vendor, vendor_at):
    server = vendor_at(vendor, max_response_bytes=1 << 20)
    server.answer = lambda seen, h: endless(h, limit=512 << 20)
    started = time.monotonic()
    with pytest.raises(LinkMsgResponseTooLargeError, match=f"max_response_bytes \\({1 << 20} bytes"):
        await _twin(vendor)
    assert time.monotonic() - started < 5


async def test_a_pause_outlives_the_trigger_that_met_it(vendor_at):
    """The trigger that got the 429 ends (its hook closed, the connection's loop entry dropped); the next
    trigger of the connection still waits out the pause, as a sync call of the process would."""
    server = vendor_at("koneksi", max_retry_wait=4, requests_per_second=0)
    sent: dict[str, float] = {}

    def answer(seen, h):
        if "/first" in seen.path:
            return send(
                h, 429, b'{"error": "slow down"}', Content_Type="application/json", Retry_After="3600"
            )
        sent[seen.path] = time.monotonic()
        send(h, 200, b"{}", Content_Type="application/json")

    server.answer = answer
    first = KoneksiHook()
    paused_at = time.monotonic()
    try:
        with pytest.raises(LinkMsgRateLimitedError):
            await first.arequest("GET", "/first")
    finally:
        await first.aclose()  # the last user of the connection in this loop
    second = KoneksiHook()
    try:
        await second.arequest("GET", "/next")
    finally:
        await second.aclose()
    assert sent["/api/next"] - paused_at >= 4 - 0.5, (
        f"sent {sent['/api/next'] - paused_at:.2f} s after the 429"
    )


#: the read timeout of the trickle tests (2 s) plus scheduling slack on a loaded machine
TRICKLE_BOUND = 2 + 8.0


@pytest.mark.parametrize("vendor", TWINS)
async def test_a_trickled_body_ends_within_the_read_timeout(vendor, vendor_at):
    server = vendor_at(vendor, read_timeout=2)
    server.answer = lambda seen, h: trickle(h, size=300, every=0.2)  # 60 s, uncut
    started = time.monotonic()
    with pytest.raises(LinkMsgVendorError, match="read timeout"):
        await _twin(vendor, max_retries=0)
    assert time.monotonic() - started < TRICKLE_BOUND


@pytest.mark.parametrize("vendor", TWINS)
async def test_trickled_headers_end_within_the_read_timeout(vendor, vendor_at):
    from tests.fixtures.hostile import trickle_head

    server = vendor_at(vendor, read_timeout=2)
    server.answer = lambda seen, h: trickle_head(h)  # ~40 s, uncut
    started = time.monotonic()
    with pytest.raises(LinkMsgVendorError, match="read timeout"):
        await _twin(vendor, max_retries=0)
    assert time.monotonic() - started < TRICKLE_BOUND


async def test_redirect_hops_share_one_deadline(vendor_at):
    server = vendor_at("koneksi", read_timeout=2)

    def slow_hop(seen, h):
        time.sleep(1.2)
        send(h, 302, Location="/api/again")

    server.answer = slow_hop
    started = time.monotonic()
    with pytest.raises(LinkMsgVendorError, match="read timeout"):
        await _twin("koneksi", max_retries=0)
    # with a deadline per hop, four hops answered (4.8 s), then "more than 3 redirects" (not a read timeout:
    # the match above fails), and a third hop was asked for
    assert time.monotonic() - started < TRICKLE_BOUND and len(server.received) == 2  # the match proves it too


async def test_a_netrc_never_adds_credentials(vendor_at, tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password NETRC-SECRET\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("NETRC", raising=False)
    server = vendor_at("koneksi")
    server.answer = lambda seen, h: send(h, 404, b'{"message": "no"}', Content_Type="application/json")
    with pytest.raises(LinkMsgError):
        await _twin("koneksi", max_retries=0)
    assert "Authorization" not in server.received[0].headers


async def test_a_trigger_cancelled_during_an_attempt_is_cancelled_not_timed_out(vendor_at):
    """Cancelling the task (a trigger ended by the triggerer) mid-attempt cancels it: no read timeout."""
    import asyncio

    server = vendor_at("koneksi", read_timeout=5)
    server.answer = lambda seen, h: trickle(h, size=100, every=0.2)
    task = asyncio.ensure_future(_twin("koneksi", max_retries=0))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
