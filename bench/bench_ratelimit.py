"""
Rate-limit use: a ConnectSafely retrieval under the vendor's documented limit, enforced by the sandbox,
with the client configured to the allowed rate. Reports the achieved rate of answered calls against the
allowed rate, and how many calls were answered 429.

ConnectSafely documents 60 requests a minute. To keep the benchmark short, time is scaled down 20 times:
the sandbox allows 60 requests per sliding 3 s window (20/s) and the client's ``requests_per_second`` is
60 / 3. One thing does not scale: ``Retry-After`` is whole seconds, at least 1, so a 429 costs a scaled
run up to 20 times more than it costs a real one.

Three client configurations run side by side, each a fresh retrieval against a fresh window:

* rate 0.95 x allowed, ``burst`` 2: the connection's default for ConnectSafely. A bucket of depth ``b`` at
  rate ``r`` admits at most ``b + r * window`` requests in any window: 2 + 57 = 59 of the 60 allowed.
* rate 1.0, ``burst`` 1: the most the bucket can send without overrunning the first window by more than 1.
* rate 1.0, ``burst`` 5: the first window overruns by 4, and then the client runs at exactly the allowed
  rate with no margin, so the window fills again every few seconds and some calls meet a 429.

Target: >= 90 % of the allowed rate with <= 1 % of calls answered 429.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from bench.common import admin, counted, print_table, quiet, sandbox_process, set_extra, task_context

#: a conversation no inbox holds: the warm-up lists the inbox and reads nothing (an empty list is refused)
WARM_UP = "urn:li:msg_conversation:(urn:li:fsd_profile:WARMUP,warm-up)"
VENDOR = "connectsafely"
#: (client rate as a share of the allowed rate, burst)
CONFIGS = ((0.95, 2), (1.0, 1))  # the connection's default first; (1.0, 5) shows the overrun


def _retrieve(info: dict[str, Any], limit: int, window: float, rate: float, burst: int, workers: int) -> dict:
    from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator

    allowed = limit / window
    client_rps = rate * allowed
    set_extra(
        info, VENDOR, requests_per_second=client_rps, burst=burst, max_in_flight=workers, max_retries=10
    )
    admin(info, "PUT", "/config", {"vendors": {VENDOR: {"rate_limit": [limit, window]}}})  # a fresh window
    admin(info, "POST", "/stats/reset")
    with tempfile.TemporaryDirectory(prefix="linkmsg-bench-") as root:
        operator = ConnectSafelyRetrieveMessagesOperator(
            task_id="retrieve", max_workers=workers, staging_path=root
        )
        started = time.perf_counter()
        result = operator.execute(task_context("rate-limit"))
        wall = time.perf_counter() - started
    stats = admin(info, "GET", "/stats")
    truth = len(admin(info, "GET", f"/truth/{VENDOR}")["messages"])
    if result["records"] != truth:
        raise RuntimeError(f"staged {result['records']} messages, the sandbox holds {truth}")
    sent = counted(stats, "calls", VENDOR)
    limited = counted(stats, "rate_limited", VENDOR)
    use = (sent - limited) / wall / allowed
    share_429 = limited / sent
    return {
        "benchmark": "rate limit",
        "limit": f"{limit}/{window:g}s",
        "client": f"{client_rps:g}/s burst {burst}",
        "burst": burst,
        "requests": sent,
        "answered_429": limited,
        "share_429": share_429,
        "wall_s": wall,
        "achieved_rps": (sent - limited) / wall,
        "allowed_rps": allowed,
        "use": use,
        "target": ">= 90%, <= 1% 429",
        "met": use >= 0.9 and share_429 <= 0.01,
    }


def run(
    conversations: int = 240,
    limit: int = 60,
    window: float = 3.0,
    workers: int = 4,
    configs: tuple[tuple[float, int], ...] = CONFIGS,
) -> list[dict]:
    """
    One retrieval per client configuration under the sandbox's limit.

    :param conversations: conversations to read (one call each, plus one listing call per 100).
    :param limit: requests the sandbox allows per ``window`` seconds, per key.
    :param window: the sliding window, seconds.
    :param workers: the operator's ``max_workers``.
    :param configs: ``(rate, burst)`` pairs: the client's rate as a share of ``limit / window``, its burst.
    :return: one dict per configuration: requests, 429s and their share, achieved and allowed rate, ``use``
        (achieved / allowed), the target and ``met``.
    """
    sizes = {VENDOR: {"accounts": 1, "conversations": conversations, "messages": 6}}
    with sandbox_process(sizes=sizes) as info, tempfile.TemporaryDirectory(prefix="linkmsg-bench-") as root:
        set_extra(info, VENDOR, requests_per_second=0)
        from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator

        ConnectSafelyRetrieveMessagesOperator(  # warm-up without a limit: imports, connection, sockets
            task_id="retrieve", conversation_ids=[WARM_UP], staging_path=root
        ).execute(task_context("warm-up"))
        return [_retrieve(info, limit, window, rate, burst, workers) for rate, burst in configs]


if __name__ == "__main__":
    quiet()
    print_table("Rate-limit use: ConnectSafely's 60/min, scaled to 60 per 3 s", run())
