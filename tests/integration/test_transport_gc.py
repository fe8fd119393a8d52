"""The transport leaves no cyclic garbage per call: the triggerer's loop must not pay for full collections."""

from __future__ import annotations

import gc
import json
import os
import time
import types
from collections import Counter

import pytest

from airflow_provider_linkmsg.exceptions import LinkMsgError
from airflow_provider_linkmsg.hooks.linkup import LinkupHook
from tests.fixtures.hostile import send

ROUTE = "GET /accounts"
RETRIEVE = "GET /messages/retrieve_messages"


@pytest.fixture
def collector_off():
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


#: the client's side of a call; the in-process sandbox's server threads (their connection resets) are not
_CLIENT = ("airflow_provider_linkmsg", "tenacity", "requests", "urllib3")


def _clients(obj: object) -> bool:
    """Whether a collected object belongs to the client's side of the calls (ours or our libraries')."""
    if isinstance(obj, types.FrameType):
        name = obj.f_code.co_filename
        return any(f"/{m}/" in name for m in _CLIENT) and "/airflow_provider_linkmsg/sandbox/" not in name
    module = getattr(type(obj), "__module__", "") or ""
    return module.split(".")[0] in _CLIENT and not module.startswith("airflow_provider_linkmsg.sandbox")


def _calls(hook: LinkupHook, n: int) -> int:
    failed = 0
    for i in range(n):
        try:
            hook.request("GET", "/accounts" if i % 5 else "/accounts/acc_unknown0000", max_retries=3)
        except LinkMsgError:
            failed += 1
    return failed


def test_sync_calls_leave_no_cyclic_garbage(sandbox, collector_off):
    sandbox.set_faults(
        [
            {"vendor": "linkup", "route": ROUTE, "p_429": 0.3, "retry_after": "0"},
            {"vendor": "linkup", "route": ROUTE, "p_truncate": 1, "times": 2, "after": 10},
            {"vendor": "linkup", "route": ROUTE, "p_reset": 1, "times": 2, "after": 20},
        ]
    )
    hook = LinkupHook(max_retry_wait=30)
    _calls(hook, 5)  # warm up: the lazy connection, session and pools are made once
    gc.collect()
    retries_before = hook.retries
    failed = _calls(hook, 60)
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep what is collected, to tell the client's cycles from the server's
    try:
        gc.collect()
        found = sum(1 for obj in gc.garbage if _clients(obj))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
    assert hook.retries - retries_before >= 10, "expected retried calls among those measured"
    assert failed >= 12, "expected failed calls (404s) among those measured"
    assert found == 0, f"{found} cyclic objects left by 60 calls"


async def test_async_calls_leave_no_cyclic_garbage(sandbox):
    from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
    from airflow_provider_linkmsg.sandbox.koneksi import SEED_001_ID

    hook = KoneksiHook(max_retry_wait=30)

    async def calls(n: int) -> int:
        failed = 0
        for i in range(n):
            try:
                await hook.aretrieve_messages(
                    SEED_001_ID if i % 5 else "00000000-0000-4000-8000-000000000000"
                )
            except LinkMsgError:
                failed += 1
        return failed

    sandbox.set_faults(
        [
            {"vendor": "koneksi", "route": RETRIEVE, "p_429": 0.3, "retry_after": "0"},
            {"vendor": "koneksi", "route": RETRIEVE, "p_5xx": 1, "times": 2, "after": 10},
            {"vendor": "koneksi", "route": RETRIEVE, "p_reset": 1, "times": 2, "after": 20},
        ]
    )
    try:
        await calls(5)  # warm up: the connection, the transport and its pool are made once
        gc.collect()
        gc.disable()
        retries_before = hook.retries
        failed = await calls(60)
        gc.set_debug(
            gc.DEBUG_SAVEALL
        )  # keep what is collected, to tell the client's cycles from the server's
        gc.collect()
        found = Counter(_kind(obj) for obj in gc.garbage if _async_clients(obj))
        sockets = sum(found.pop(kind, 0) for kind in _PER_CONNECTION)
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        await hook.aclose()
    assert hook.retries - retries_before >= 10, "expected retried calls among those measured"
    assert failed >= 12, "expected failed calls (404s) among those measured"
    assert sum(found.values()) == 0, f"{sum(found.values())} cyclic objects left by 60 calls: {found}"
    assert sockets <= 2 * 2, f"{sockets} socket transports for 2 reset connections"


#: CPython's asyncio socket transport keeps a bound method of itself (``_read_ready_cb``): a cycle per
#: connection, whatever the client. Only the connections the faults reset (2) are freed during the calls.
_PER_CONNECTION = ("asyncio.selector_events._SelectorSocketTransport", "asyncio.trsock.TransportSocket")


#: the client's side of an async call: ours, tenacity, httpx and what it runs on
_ASYNC_CLIENT = (*_CLIENT, "httpx", "httpcore", "h11", "anyio", "asyncio")


def _async_clients(obj: object) -> bool:
    """Whether a collected object belongs to the async client's side (a frame or coroutine of it too)."""
    code = getattr(obj, "f_code", None) or getattr(obj, "cr_code", None) or getattr(obj, "ag_code", None)
    if isinstance(obj, (types.FrameType, types.CoroutineType, types.AsyncGeneratorType)) and code:
        name = code.co_filename
        return (
            any(f"/{m}/" in name for m in _ASYNC_CLIENT) and "/airflow_provider_linkmsg/sandbox/" not in name
        )
    module = getattr(type(obj), "__module__", "") or ""
    return module.split(".")[0] in _ASYNC_CLIENT and not module.startswith("airflow_provider_linkmsg.sandbox")


def _kind(obj) -> str:
    return f"{type(obj).__module__}.{type(obj).__qualname__}"


#: failed async calls that drop their connection, and the hostile server's answer to each
_DROPPING = {
    "foreign redirect": lambda h: send(h, 302, Location="http://127.0.0.1:1/x"),
    "body too large": lambda h: send(h, 200, b" " * 300_000, Content_Type="application/json"),
    "read timeout": lambda h: (time.sleep(0.6), send(h, 200, b"{}")),
}


@pytest.mark.parametrize("outcome", _DROPPING)
async def test_async_calls_that_drop_their_connection_leave_no_cyclic_garbage(
    outcome, sandbox, hostile_factory, monkeypatch
):
    from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook

    server = hostile_factory()
    server.answer = lambda seen, h: _DROPPING[outcome](h)
    conn = json.loads(os.environ["AIRFLOW_CONN_KONEKSI_DEFAULT"])
    conn["extra"].update(
        {"base_url": server.url, "max_retries": 0, "read_timeout": 0.3, "max_response_bytes": 100_000}
    )
    monkeypatch.setenv("AIRFLOW_CONN_KONEKSI_DEFAULT", json.dumps(conn))
    hook = KoneksiHook()
    n = 3 if outcome == "read timeout" else 20

    async def calls(count: int) -> int:
        failed = 0
        for _ in range(count):
            try:
                await hook.arequest("GET", "/account")
            except LinkMsgError:
                failed += 1
        return failed

    try:
        await calls(2)  # warm up: the transport and its pool are made once
        gc.collect()
        gc.disable()
        failed = await calls(n)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        found = Counter(_kind(obj) for obj in gc.garbage if _async_clients(obj))
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        await hook.aclose()
    assert failed == n, f"expected every call to fail ({outcome})"
    assert sum(found.values()) == 0, f"{sum(found.values())} cyclic objects left by {n} calls: {found}"


async def test_async_calls_leave_no_timer_in_the_loop(sandbox):
    """
    An attempt's read deadline leaves no cancelled timer in the loop's schedule: one armed and cancelled per
    attempt (``asyncio.timeout``) would stay there until it would have fired (connect + read timeout), and
    at the triggerer's hundreds of attempts a second reach the collector's oldest generation.
    """
    import asyncio

    from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
    from airflow_provider_linkmsg.sandbox.koneksi import SEED_001_ID

    hook = KoneksiHook()
    loop = asyncio.get_running_loop()
    # a sleeping trigger's timer, due first: asyncio drops cancelled timers only from the head of its heap
    sleeper = loop.call_later(5, lambda: None)
    try:
        await hook.aretrieve_messages(SEED_001_ID)  # warm up: the connection, the transport and its pool
        before = sum(1 for h in loop._scheduled if h.cancelled())
        for _ in range(20):
            await hook.aretrieve_messages(SEED_001_ID)
        left = sum(1 for h in loop._scheduled if h.cancelled()) - before
    finally:
        sleeper.cancel()
        await hook.aclose()
    assert left == 0, f"{left} cancelled timers left in the loop's schedule by 20 calls"
