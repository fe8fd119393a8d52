"""
Overhead of our transport: :class:`ConnectSafelyHook` reading every message of N conversations through its
paginating generators, beside a bare ``requests.Session`` loop that makes exactly the same HTTP calls
(same URLs, query parameters and headers; the sandbox's call counters are compared).

Both read sequentially from a sandbox in another process, in alternating repetitions (hook first, then
bare first), after one warm-up each; the medians of wall time and of this process's CPU time
(``time.process_time()``: the client's alone) are compared. Target: ratio <= 1.25.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from bench.common import (
    admin,
    connection,
    print_table,
    quiet,
    sandbox_process,
    task_context,
    use_connections,
)

VENDOR = "connectsafely"
TARGET = 1.25


def _hook_read(account_id: str, page_size: int) -> int:
    """Every message of the account through the hook's generators; returns how many."""
    from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook

    hook = ConnectSafelyHook()
    read = 0
    for conversation in hook.iter_conversations(account_id, count=100):
        for _message in hook.iter_messages(  # since=0: a whole conversation, as the operator's full reads ask
            conversation["conversationUrn"], account_id=account_id, count=page_size, since=0
        ):
            read += 1
    return read


def _operator_read(root: str, run: list[int], page_size: int) -> int:
    """The same calls through the retrieve operator (one worker, full refresh): normalized and staged."""
    from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator

    run[0] += 1
    operator = ConnectSafelyRetrieveMessagesOperator(
        task_id="retrieve", max_workers=1, full_refresh=True, page_size=page_size, staging_path=root
    )
    return operator.execute(task_context(f"run-{run[0]}"))["records"]


def _bare_read(base_url: str, api_key: str, account_id: str, page_size: int) -> int:
    """The same calls with ``requests`` alone: same headers, parameters and end-of-list rules."""
    from airflow_provider_linkmsg.hooks.base import USER_AGENT

    session = requests.Session()
    session.headers.update(
        {"User-Agent": USER_AGENT, "Accept": "application/json", "Authorization": f"Bearer {api_key}"}
    )
    timeout = (10.0, 60.0)
    read = 0
    cursor = None
    while True:
        params = {"count": 100, "accountId": account_id, "nextCursor": cursor}
        response = session.get(f"{base_url}/conversations", params=params, timeout=timeout)
        response.raise_for_status()
        listing = response.json()
        for conversation in listing["conversations"]:
            endpoint = f"{base_url}/conversations/{quote(conversation['conversationUrn'], safe='')}/messages"
            message_cursor = None
            while True:
                params = {"accountId": account_id, "count": page_size, "since": 0, "cursor": message_cursor}
                response = session.get(endpoint, params=params, timeout=timeout)
                response.raise_for_status()
                page = response.json()
                read += len(page["messages"])
                message_cursor = page.get("cursor")
                if not page["messages"] or page.get("hasMore") is False or not message_cursor:
                    break
        cursor = listing.get("nextCursor")
        if not listing["conversations"] or listing.get("hasMore") is False or not cursor:
            break
    session.close()
    return read


def _measure(read: Callable[[], int], info: dict[str, Any]) -> dict[str, Any]:
    admin(info, "POST", "/stats/reset")
    wall, cpu = time.perf_counter(), time.process_time()
    messages = read()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    routes = admin(info, "GET", "/stats").get("calls", {})
    return {"wall": wall, "cpu": cpu, "messages": messages, "routes": routes, "calls": sum(routes.values())}


def run(conversations: int = 200, messages: int = 20, page_size: int = 10, repetitions: int = 5) -> dict:
    """
    Hook vs bare ``requests``, side by side; the retrieve operator beside them for information.

    :param conversations: conversations of the one account.
    :param messages: average messages per conversation.
    :param page_size: messages per call (smaller: more pages per conversation).
    :param repetitions: measured runs of each (after a warm-up of each).
    :return: the figures, ``wall_ratio`` and ``cpu_ratio`` (hook / bare), ``operator_wall_ratio``, the
        target and ``met``.
    """
    sizes = {VENDOR: {"accounts": 1, "conversations": conversations, "messages": messages}}
    with sandbox_process(sizes=sizes) as info, tempfile.TemporaryDirectory(prefix="linkmsg-bench-") as root:
        use_connections(info)
        conn = connection(info, VENDOR)
        account_id = conn["extra"]["account_id"]
        base_url, api_key = conn["extra"]["base_url"], conn["password"]
        operator_runs = [0]
        clients: dict[str, Callable[[], int]] = {
            "hook": lambda: _hook_read(account_id, page_size),
            "bare": lambda: _bare_read(base_url, api_key, account_id, page_size),
            "operator": lambda: _operator_read(root, operator_runs, page_size),
        }
        for read in clients.values():  # warm-up: imports, connection lookup, first sockets
            _measure(read, info)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in clients}
        for rep in range(repetitions):
            names = list(clients) if rep % 2 == 0 else list(reversed(clients))
            for name in names:
                results[name].append(_measure(clients[name], info))
    first = results["hook"][0]
    runs = [r for name in results for r in results[name]]
    if any((r["routes"], r["messages"]) != (first["routes"], first["messages"]) for r in runs):
        raise RuntimeError(f"the clients did not make the same calls: {results}")
    med = {
        name: {k: statistics.median(r[k] for r in rs) for k in ("wall", "cpu")}
        for name, rs in results.items()
    }
    wall_ratio = med["hook"]["wall"] / med["bare"]["wall"]
    cpu_ratio = med["hook"]["cpu"] / med["bare"]["cpu"]
    calls = int(first["calls"])
    return {
        "benchmark": "overhead",
        "conversations": conversations,
        "calls": calls,
        "messages": first["messages"],
        "hook_wall_s": med["hook"]["wall"],
        "bare_wall_s": med["bare"]["wall"],
        "operator_wall_s": med["operator"]["wall"],
        "hook_cpu_ms_per_call": med["hook"]["cpu"] / calls * 1000,
        "bare_cpu_ms_per_call": med["bare"]["cpu"] / calls * 1000,
        "operator_cpu_ms_per_call": med["operator"]["cpu"] / calls * 1000,
        "wall_ratio": wall_ratio,
        "cpu_ratio": cpu_ratio,
        "operator_wall_ratio": med["operator"]["wall"] / med["bare"]["wall"],
        "operator_cpu_ratio": med["operator"]["cpu"] / med["bare"]["cpu"],
        "target": f"<= {TARGET}x wall and CPU",
        "met": wall_ratio <= TARGET and cpu_ratio <= TARGET,
    }


if __name__ == "__main__":
    quiet()
    print_table("Overhead: our hook vs a bare requests loop (same calls)", [run()])
