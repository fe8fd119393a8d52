"""The transport leaves no cyclic garbage per call: the triggerer's loop must not pay for full collections."""

from __future__ import annotations

import gc

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
    found = gc.collect()
    assert hook.retries - retries_before >= 10, "expected retried calls among those measured"
    assert failed >= 12, "expected failed calls (404s) among those measured"
    assert found == 0, f"{found} cyclic objects left by 60 calls"
