"""The transport leaves no cyclic garbage per call: the triggerer's loop must not pay for full collections."""

from __future__ import annotations

import gc
import types

import pytest

from airflow_provider_linkmsg.exceptions import LinkMsgError
from airflow_provider_linkmsg.hooks.linkup import LinkupHook

ROUTE = "GET /accounts"


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
