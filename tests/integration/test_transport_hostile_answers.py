"""
Hostile answers over real HTTP, for every vendor hook, sync and async (the triggers' path): JSON nested
deeper than a parser goes, keys echoed in forms a plain search misses (split by a line break, spelt with
JSON ``\\u`` escapes, in a wrong-typed field of a 2xx answer, in a redirect's path, in a field the
connection test quotes). Each ends as a typed error, or a message, that holds no key nor a prefix of one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_provider_linkmsg.exceptions import (
    LinkMsgError,
    LinkMsgForeignOriginError,
    LinkMsgRateLimitedError,
    LinkMsgResponseError,
    LinkMsgResponseTooLargeError,
)
from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
from airflow_provider_linkmsg.sandbox.koneksi import SEED_001_ID
from tests.fixtures.hostile import send
from tests.integration import test_transport_safety as _safety
from tests.integration.test_transport_safety import VENDORS, _secrets

vendor_at = _safety.vendor_at  # the fixture: a vendor's connection pointed at a new hostile server

JSON = {"Content_Type": "application/json"}


def _exposed(secret: str, text: str) -> bool:
    """Whether ``text`` shows ``secret``, or a form a reader undoes: split by whitespace, JSON-escaped."""
    unescaped = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    return any(secret in re.sub(r"\s+", "", t) for t in (text, unescaped)) or secret[:12] in text


async def _async_call(hook_class, route: str, **kwargs):
    hook = hook_class(**kwargs)
    try:
        return await hook.arequest("GET", route)
    finally:
        await hook.aclose()


async def _fails_sync_and_async(vendor: str, error: type[LinkMsgError]) -> list[LinkMsgError]:
    """The ``error`` of the vendor's cheap GET on the sync path and on the async one (the triggers')."""
    hook_class, route = VENDORS[vendor]
    with pytest.raises(error) as sync_err:
        hook_class(max_retries=0).request("GET", route)
    with pytest.raises(error) as async_err:
        await _async_call(hook_class, route, max_retries=0)
    return [sync_err.value, async_err.value]


# ---- a 2xx body nested deeper than the parser goes -----------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
async def test_deeply_nested_json_is_a_typed_error_sync_and_async(vendor, vendor_at):
    server = vendor_at(vendor)
    depth = 100_000
    server.answer = lambda seen, h: send(h, 200, b"[" * depth + b"]" * depth, **JSON)
    for err in await _fails_sync_and_async(vendor, LinkMsgResponseError):
        assert err.vendor == vendor and err.endpoint == VENDORS[vendor][1]
        assert "unparsable" in str(err)


# ---- echoed keys in forms a plain search misses ---------------------------------------------------------
def _forms(secret: str) -> dict[str, bytes]:
    half = len(secret) // 2
    escaped = "".join(f"\\u{ord(c):04x}" for c in secret)
    return {
        "split in a JSON message": json.dumps(
            {"message": f"bad key {secret[:half]}\n{secret[half:]}"}
        ).encode(),
        "split in a text body": f"bad key {secret[:half]}\r\n{secret[half:]}".encode(),
        "escaped in a list body": f'["bad key {escaped}"]'.encode(),
        "escaped in a body without envelope": f'{{"detail": "bad key {escaped}"}}'.encode(),
    }


@pytest.mark.parametrize("form", list(_forms("x" * 10)))
@pytest.mark.parametrize("vendor", VENDORS)
async def test_split_and_escaped_echoes_of_a_key_are_masked(vendor, form, vendor_at):
    server = vendor_at(vendor)
    secret = _secrets(vendor)[0]
    body = _forms(secret)[form]
    server.answer = lambda seen, h: send(h, 400, body, **JSON)
    sync_err, async_err = await _fails_sync_and_async(vendor, LinkMsgError)
    ok, message = VENDORS[vendor][0]().test_connection()
    assert not ok
    for where, text in (("sync", str(sync_err)), ("async", str(async_err)), ("test", message)):
        assert not _exposed(secret, text), f"{vendor} {form}: the key shows in the {where} text: {text!r}"
        assert "***" in text


# ---- a key in a wrong-typed field of a 2xx answer (the schema check quotes the field) --------------------
@pytest.mark.parametrize("pad", [0, 60], ids=["whole", "across-the-cut"])
async def test_a_key_in_a_wrong_typed_field_is_not_quoted_by_the_schema_check(pad, vendor_at):
    server = vendor_at("koneksi")
    secret = _secrets("koneksi")[0]
    answer = {"metadata": {"generation_status": ["x" * pad + secret]}}
    server.answer = lambda seen, h: send(h, 200, json.dumps(answer).encode(), **JSON)
    with pytest.raises(LinkMsgResponseError) as sync_err:
        KoneksiHook(max_retries=0).retrieve_messages(SEED_001_ID)
    hook = KoneksiHook(max_retries=0)
    try:
        with pytest.raises(LinkMsgResponseError) as async_err:
            await hook.aretrieve_messages(SEED_001_ID)
    finally:
        await hook.aclose()
    for err in (sync_err, async_err):
        text = str(err.value)
        assert "metadata.generation_status" in text and "***" in text
        assert not _exposed(secret, text) and secret[:8] not in text, text


def test_the_schema_check_masks_what_the_masker_knows_without_a_redactor(sandbox):
    from airflow_provider_linkmsg.schemas import parse
    from airflow_provider_linkmsg.schemas.koneksi import RetrieveAnswer

    secret = _secrets("koneksi")[0]
    assert KoneksiHook().conn_params.base_url  # the connection read: Airflow's masker knows its password
    with pytest.raises(LinkMsgResponseError) as err:
        parse(
            RetrieveAnswer,
            {"metadata": {"generation_status": ["y" * 70 + secret]}},
            vendor="koneksi",
            route="GET /x",
        )
    assert secret[:8] not in str(err.value)


# ---- a key in a foreign redirect's path -------------------------------------------------------------------
@pytest.mark.parametrize("vendor", VENDORS)
async def test_a_foreign_redirect_names_only_its_origin(vendor, vendor_at, hostile_factory):
    server = vendor_at(vendor)
    other = hostile_factory()
    secret = _secrets(vendor)[0]
    server.answer = lambda seen, h: send(h, 302, Location=f"{other.url}/x/{secret}?k={secret}")
    for err in await _fails_sync_and_async(vendor, LinkMsgForeignOriginError):
        assert other.url in str(err) and err.location == other.url
        assert not _exposed(secret, str(err)) and "/x/" not in str(err)
    assert other.received == []


# ---- the connection test's success message quotes vendor fields -------------------------------------------
SUCCESS = {
    "koneksi": lambda key: {"plan_name": key},
    "linkedapi": lambda key: {"result": {"name": f"a\n{key[:10]}\n{key[10:]}"}},
    "linkup": lambda key: {"data": {"total": [key]}},
}


@pytest.mark.parametrize("vendor", SUCCESS)
def test_a_key_in_the_connection_test_answer_is_masked(vendor, vendor_at):
    server = vendor_at(vendor)
    secret = _secrets(vendor)[0]
    body = json.dumps(SUCCESS[vendor](secret)).encode()
    server.answer = lambda seen, h: send(h, 200, body, **JSON)
    ok, message = VENDORS[vendor][0]().test_connection()
    assert ok and "succeeded" in message and "***" in message
    assert not _exposed(secret, message), message


# ---- compressed bodies on the async path: the cap holds while decoding ------------------------------------
def _deflate(data: bytes, wbits: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, wbits)
    return packer.compress(data) + packer.flush()


def _gzip(data: bytes) -> bytes:
    return _deflate(data, zlib.MAX_WBITS | 16)


def _zeros_gzip(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(size >> 20)) + packer.flush()


@pytest.mark.parametrize("encoding", ["gzip", "gzip, gzip", "deflate, gzip"])
async def test_an_inflating_body_holds_no_more_than_the_cap_while_decoded(encoding, vendor_at):
    inner = _zeros_gzip(64 << 20)  # 64 MiB of zeros
    wire = {"gzip": inner, "gzip, gzip": _gzip(inner), "deflate, gzip": None}[encoding]
    if wire is None:  # deflate first, then gzip over it
        packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
        wire = _gzip(b"".join(packer.compress(bytes(1 << 20)) for _ in range(64)) + packer.flush())
    server = vendor_at("koneksi", max_response_bytes=1 << 20)
    server.answer = lambda seen, h: send(h, 200, wire, Content_Encoding=encoding, **JSON)
    tracemalloc.start()
    try:
        with pytest.raises(LinkMsgResponseTooLargeError):
            await _async_call(KoneksiHook, "/account", max_retries=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, (
        f"{peak >> 20} MiB held while decoding a {len(wire)}-byte {encoding} body (cap 1 MiB)"
    )


@pytest.mark.parametrize(
    "encoding, encode",
    [
        ("gzip", _gzip),
        ("x-gzip", _gzip),
        ("gzip, gzip", lambda b: _gzip(_gzip(b))),
        ("gzip", lambda b: _gzip(b[: len(b) // 2]) + _gzip(b[len(b) // 2 :])),  # two members (RFC 1952 2.2)
        ("gzip", lambda b: _gzip(b) + b"\x00" * 8),  # padding after the last member: ignored, as urllib3 does
        ("deflate", lambda b: _deflate(b, zlib.MAX_WBITS)),
        ("deflate", lambda b: _deflate(b, -zlib.MAX_WBITS)),  # raw deflate, as some servers send it
        ("identity", lambda b: b),
        ("br", lambda b: b),  # not decoded (as httpx, without brotli): read as it came
    ],
)
async def test_compressed_answers_within_the_cap_are_decoded(encoding, encode, vendor_at):
    answer = {"plan_name": "p" * 300_000, "n": list(range(1000))}
    server = vendor_at("koneksi")
    server.answer = lambda seen, h: send(
        h, 200, encode(json.dumps(answer).encode()), Content_Encoding=encoding, **JSON
    )
    assert (await _async_call(KoneksiHook, "/account", max_retries=0)).data == answer


async def test_a_corrupt_gzip_body_is_a_typed_error(vendor_at):
    server = vendor_at("koneksi")
    server.answer = lambda seen, h: send(
        h, 200, b"\x1f\x8b\x08\x00garbage" * 10, Content_Encoding="gzip", **JSON
    )
    with pytest.raises(LinkMsgResponseError, match="truncated response body"):
        await _async_call(KoneksiHook, "/account", max_retries=0)


# ---- a pause the vendor asks for, answer after answer, never holds the connection past the cap -----------
CAP, IN_FLIGHT, SPREAD = (
    2.0,
    6,
    0.5,
)  # uncapped, the last 429 would hold the connection ~4.5 s: 1 s of load slack


def _staggered_429s(server) -> threading.Event:
    """The calls in flight answered 429 ``Retry-After: 3600`` one every ``SPREAD`` s; ``/next`` at once."""
    first, lock, order = threading.Event(), threading.Lock(), [0]

    def answer(seen, h):
        if "/next" in seen.path:
            return send(h, 200, b"{}", **JSON)
        with lock:
            order[0] += 1
            i = order[0]
        time.sleep(0.2 + SPREAD * (i - 1))
        first.set()
        send(h, 429, b'{"error": "slow down"}', Retry_After="3600", **JSON)

    server.answer = answer
    return first


async def test_later_429s_extend_the_async_pause_no_further_than_the_cap(vendor_at):
    first = _staggered_429s(vendor_at("koneksi", max_retry_wait=CAP, requests_per_second=0, max_in_flight=16))
    hooks = [KoneksiHook() for _ in range(IN_FLIGHT + 1)]
    calls = [asyncio.create_task(h.arequest("GET", "/x")) for h in hooks[:-1]]
    try:
        while not first.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the first 429 is in: the connection is paused
        start = time.monotonic()
        await hooks[-1].arequest("GET", "/next")
        waited = time.monotonic() - start
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        for hook in hooks:
            await hook.aclose()
    assert all(isinstance(o, LinkMsgRateLimitedError) for o in outcomes), outcomes
    assert 1 < waited <= CAP + 1.0, f"the next call waited {waited:.2f} s (cap {CAP} s)"


def test_later_429s_extend_the_sync_pause_no_further_than_the_cap(vendor_at):
    first = _staggered_429s(vendor_at("koneksi", max_retry_wait=CAP, requests_per_second=0, max_in_flight=16))
    hook = KoneksiHook()
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        calls = [pool.submit(hook.request, "GET", "/x") for _ in range(IN_FLIGHT)]
        assert first.wait(10)
        time.sleep(0.1)  # the first 429 is in: the connection is paused
        start = time.monotonic()
        hook.request("GET", "/next")
        waited = time.monotonic() - start
        outcomes = [c.exception() for c in calls]
    assert all(isinstance(o, LinkMsgRateLimitedError) for o in outcomes), outcomes
    assert 1 < waited <= CAP + 1.0, f"the next call waited {waited:.2f} s (cap {CAP} s)"


# ---- the time a call's retries are held by the connection's pauses counts towards its max_retry_wait ------
HOLD_CAP = 3.0


def _others_keep_the_connection_paused(server) -> threading.Event:
    """``/x`` answers 429 ``Retry-After: 0.3`` three times, then 200; every other call 429 ``Retry-After: 3``
    after 0.1 s: callers of ``/y`` in a loop keep opening new pauses of the connection, each up to the cap."""
    stop, lock, seen = threading.Event(), threading.Lock(), [0]

    def answer(seen_request, h):
        if "/x" in seen_request.path:
            with lock:
                seen[0] += 1
                n = seen[0]
            if n > 3:
                return send(h, 200, b"{}", **JSON)
            return send(h, 429, b'{"error": "slow down"}', Retry_After="0.3", **JSON)
        time.sleep(0.1)
        send(h, 429, b'{"error": "slow down"}', Retry_After="3", **JSON)

    server.answer = answer
    return stop


def test_a_sync_call_held_by_other_calls_pauses_gives_up_at_its_max_retry_wait(vendor_at):
    stop = _others_keep_the_connection_paused(
        vendor_at("koneksi", max_retry_wait=HOLD_CAP, requests_per_second=0, max_in_flight=16)
    )

    def others() -> None:
        hook = KoneksiHook()
        while not stop.is_set():
            with contextlib.suppress(LinkMsgRateLimitedError):
                hook.request("GET", "/y", max_retries=0)

    threads = [threading.Thread(target=others, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    started = time.monotonic()
    try:
        # without counting the holds: each retry waits out a fresh 3 s pause, and the fourth attempt's 200
        # comes after ~9 s of waiting between retries against a max_retry_wait of 3 s
        with pytest.raises(LinkMsgRateLimitedError, match="max_retry_wait of 3 s"):
            KoneksiHook().request("GET", "/x")
        took = time.monotonic() - started
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert took < HOLD_CAP + 4, f"gave up after {took:.1f} s"


async def test_an_async_call_held_by_other_calls_pauses_gives_up_at_its_max_retry_wait(vendor_at):
    stop = _others_keep_the_connection_paused(
        vendor_at("koneksi", max_retry_wait=HOLD_CAP, requests_per_second=0, max_in_flight=16)
    )
    hooks = [KoneksiHook() for _ in range(3)]

    async def others(hook) -> None:
        while not stop.is_set():
            with contextlib.suppress(LinkMsgRateLimitedError):
                await hook.arequest("GET", "/y", max_retries=0)

    tasks = [asyncio.create_task(others(h)) for h in hooks[1:]]
    started = time.monotonic()
    try:
        with pytest.raises(LinkMsgRateLimitedError, match="max_retry_wait of 3 s"):
            await hooks[0].arequest("GET", "/x")
        took = time.monotonic() - started
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for hook in hooks:
            await hook.aclose()
    assert took < HOLD_CAP + 4, f"gave up after {took:.1f} s"


async def test_a_secret_nested_in_a_secret_extra_is_redacted_when_echoed(vendor_at):
    """``webhook_secrets`` holds one secret per account: each is hidden, not only the dict's repr."""
    from airflow_provider_linkmsg.hooks.linkup import LinkupHook

    secret = "whsec_NESTED0123456789abcdef"
    server = vendor_at("linkup", webhook_secrets={"acc_1": secret, "acc_2": ["whsec_LISTED0123456789"]})
    server.answer = lambda seen, h: send(
        h, 400, json.dumps({"error": f"bad {secret} and whsec_LISTED0123456789"}).encode(), **JSON
    )
    hook = LinkupHook(max_retries=0)
    with pytest.raises(LinkMsgError) as sync_error:
        hook.request("GET", "/accounts")
    try:
        with pytest.raises(LinkMsgError) as async_error:
            await hook.arequest("GET", "/accounts")
    finally:
        await hook.aclose()
    for text in (str(sync_error.value), str(async_error.value)):
        assert "NESTED0123456789" not in text and "LISTED0123456789" not in text, text
