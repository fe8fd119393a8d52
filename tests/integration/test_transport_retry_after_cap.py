"""
Issue 13's acceptance in its own figures, over real HTTP against the sandbox, for every vendor at once: with
``Retry-After: 3600`` and ``max_retry_wait=30``, the call fails at once and the next call of the connection
proceeds within 30 s (after the capped pause, not the vendor's hour). ``test_transport_safety`` checks the same
rule with an 8 s cap; this one costs ~30 s, the four vendors running concurrently.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from airflow_provider_linkmsg.exceptions import LinkMsgRateLimitedError
from tests.integration.test_transport_safety import VENDORS, _conn

pytestmark = [pytest.mark.slow]

#: what the vendor asks for, and the connection's cap: the acceptance's figures
RETRY_AFTER = 3600
MAX_RETRY_WAIT = 30.0
#: scheduling slack on a loaded machine (load 7+ on 2 cores): still two orders of magnitude below 3600 s
LOAD_SLACK = 20.0


def test_retry_after_3600_with_a_30_s_cap_fails_at_once_and_the_next_call_proceeds_within_30_s(
    sandbox, monkeypatch
):
    for vendor in VENDORS:
        conn = _conn(vendor)
        conn["extra"]["max_retry_wait"] = MAX_RETRY_WAIT
        monkeypatch.setenv(f"AIRFLOW_CONN_{vendor.upper()}_DEFAULT", json.dumps(conn))
    sandbox.set_faults(
        [
            {"vendor": v, "route": f"GET {r}", "p_429": 1, "retry_after": str(RETRY_AFTER), "times": 1}
            for v, (_, r) in VENDORS.items()
        ]
    )

    def run(vendor: str) -> tuple[float, float]:
        hook_class, route = VENDORS[vendor]
        started = time.monotonic()
        with pytest.raises(LinkMsgRateLimitedError, match=f"asked to wait {RETRY_AFTER}"):
            hook_class().request("GET", route)
        first = time.monotonic() - started
        assert hook_class().request("GET", route).status == 200  # another hook: the connection's limiter
        return first, time.monotonic() - started

    with ThreadPoolExecutor(len(VENDORS)) as pool:
        timings = dict(zip(VENDORS, pool.map(run, VENDORS), strict=True))
    for vendor, (first, both) in timings.items():
        # the call past the cap fails at once: a call that slept the (capped) wait would take 30 s
        assert first < MAX_RETRY_WAIT / 2, f"{vendor}: the call past the cap took {first:.1f} s to fail"
        # the next call honoured the pause the connection took (capped at 30 s) ...
        assert both >= MAX_RETRY_WAIT * 0.98, (
            f"{vendor}: the next call went out after {both:.1f} s, in the pause"
        )
        # ... and did not wait the vendor's hour
        assert both < MAX_RETRY_WAIT + LOAD_SLACK, (
            f"{vendor}: the next call waited {both:.1f} s, past the cap"
        )
    calls = sandbox.stats()["calls"]
    assert {v: calls.get(f"{v} GET {r}") for v, (_, r) in VENDORS.items()} == dict.fromkeys(VENDORS, 2)
