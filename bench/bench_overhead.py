"""
Overhead of what users run: the ConnectSafely **retrieve operator** beside a plain ``requests`` loop that
does the same work, as a user's own script would.

- **operator**: ``execute()`` with one worker and a full refresh. It lists the conversations, reads every
  message (``since=0``), checks each answer (schema, pagination guards, origin), normalizes each message
  into a :class:`~airflow_provider_linkmsg.records.Message`, stages them as JSON Lines (a hidden temporary
  file, fsync, rename) with a manifest, updates the watermarks and the index of staged ids, and returns
  its XCom dict.
- **plain loop**: one ``requests.Session`` making exactly the same HTTP calls (same URLs, query
  parameters and headers: the sandbox's call counters are compared), ``raise_for_status()`` and
  ``response.json()`` on each answer, each message turned into the same record by plain code (a dict, the
  timestamp formatted with ``strftime``) and written with ``json.dumps`` to one JSON Lines file (opened,
  written, closed; no fsync, no manifest, no state). Its file is checked to hold the very lines the
  operator staged, so both do the same work and the difference is what the operator adds.
- **hook**: the hook's paginating generators alone (nothing normalized or staged), for information.

All read sequentially from a sandbox in another process, in interleaved repetitions (the order reversed
every other one), after one warm-up each; the medians of wall time and of this process's CPU time
(``time.process_time()``: the client's alone) are compared, and each one's range is printed.
Target: operator / plain loop <= 1.2, wall and CPU.
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
TARGET = 1.2


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


def _operator_read(root: str, run: list[int], page_size: int, staged: list[str]) -> int:
    """
    The same calls through the retrieve operator (one worker, full refresh): normalized and staged; the
    manifest's path goes into ``staged``.
    """
    from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator

    run[0] += 1
    operator = ConnectSafelyRetrieveMessagesOperator(
        task_id="retrieve", max_workers=1, full_refresh=True, page_size=page_size, staging_path=root
    )
    result = operator.execute(task_context(f"run-{run[0]}"))
    staged[:] = [result["manifest"]]
    return result["records"]


def _plain_path(root: str) -> str:
    import os

    return os.path.join(root, "plain.jsonl")


def _bare_read(base_url: str, api_key: str, account_id: str, page_size: int, root: str) -> int:
    """
    The same calls with ``requests`` alone (same headers, parameters and end-of-list rules), each message
    normalized by plain code into the record the operator stages and written to a JSON Lines file.
    """
    import json
    from datetime import UTC, datetime

    from airflow_provider_linkmsg.hooks.base import USER_AGENT

    session = requests.Session()
    session.headers.update(
        {"User-Agent": USER_AGENT, "Accept": "application/json", "Authorization": f"Bearer {api_key}"}
    )
    timeout = (10.0, 60.0)
    read = 0
    cursor = None
    out = open(_plain_path(root), "w", encoding="utf-8")  # noqa: SIM115
    while True:
        params = {"count": 100, "accountId": account_id, "nextCursor": cursor}
        response = session.get(f"{base_url}/conversations", params=params, timeout=timeout)
        response.raise_for_status()
        listing = response.json()
        for conversation in listing["conversations"]:
            urn = conversation["conversationUrn"]
            channel = "sales_navigator" if urn.startswith("urn:li:salesNav_thread:") else "standard"
            endpoint = f"{base_url}/conversations/{quote(urn, safe='')}/messages"
            message_cursor = None
            while True:
                params = {"accountId": account_id, "count": page_size, "since": 0, "cursor": message_cursor}
                response = session.get(endpoint, params=params, timeout=timeout)
                response.raise_for_status()
                page = response.json()
                read += len(page["messages"])
                for message in page["messages"]:
                    sent_at = datetime.fromtimestamp(message["sentAt"] / 1000, tz=UTC)
                    record = {
                        "key": f"connectsafely:{account_id}:{message['messageUrn']}",
                        "vendor": "connectsafely",
                        "account_id": account_id,
                        "conversation_id": urn,
                        "message_id": message["messageUrn"],
                        "sent_at": sent_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "direction": "outbound" if message.get("isSentByOwner") else "inbound",
                        "sender_id": message.get("senderProfileId"),
                        "sender_name": message.get("senderName"),
                        "text": message.get("text") or "",
                        "message_type": message.get("type") or "TEXT",
                        "has_attachments": bool(message.get("hasAttachment") or message.get("attachments")),
                        "channel": channel,
                    }
                    out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
                message_cursor = page.get("cursor")
                if not page["messages"] or page.get("hasMore") is False or not message_cursor:
                    break
        cursor = listing.get("nextCursor")
        if not listing["conversations"] or listing.get("hasMore") is False or not cursor:
            break
    out.close()
    session.close()
    return read


def _same_lines(manifest_path: str, root: str) -> None:
    """Raise unless the plain loop's file holds the lines the operator staged (in any order)."""
    from airflow_provider_linkmsg.io.staging import Manifest, iter_part_lines

    manifest = Manifest.load(manifest_path)
    staged = sorted(
        line.decode() for index in range(len(manifest.files)) for line in iter_part_lines(manifest, index)
    )
    with open(_plain_path(root), encoding="utf-8") as f:
        plain = sorted(f)
    if staged != plain:
        from itertools import zip_longest

        difference = next((a, b) for a, b in zip_longest(staged, plain) if a != b)
        raise RuntimeError(
            f"the plain loop did not write the records the operator staged ({len(plain)} lines, "
            f"{len(staged)} staged); first difference (staged, plain): {difference}"
        )


def _measure(read: Callable[[], int], info: dict[str, Any]) -> dict[str, Any]:
    admin(info, "POST", "/stats/reset")
    wall, cpu = time.perf_counter(), time.process_time()
    messages = read()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    routes = admin(info, "GET", "/stats").get("calls", {})
    return {"wall": wall, "cpu": cpu, "messages": messages, "routes": routes, "calls": sum(routes.values())}


def run(conversations: int = 200, messages: int = 20, page_size: int = 10, repetitions: int = 20) -> dict:
    """
    The retrieve operator vs a plain ``requests`` loop, side by side; the hook alone beside them.

    :param conversations: conversations of the one account.
    :param messages: average messages per conversation.
    :param page_size: messages per call (smaller: more pages per conversation).
    :param repetitions: measured runs of each (after a warm-up of each), interleaved.
    :return: the figures: medians and ranges, ``wall_ratio`` and ``cpu_ratio`` (operator / plain loop),
        ``hook_wall_ratio`` and ``hook_cpu_ratio``, the target and ``met``.
    """
    sizes = {VENDOR: {"accounts": 1, "conversations": conversations, "messages": messages}}
    with sandbox_process(sizes=sizes) as info, tempfile.TemporaryDirectory(prefix="linkmsg-bench-") as root:
        use_connections(info)
        conn = connection(info, VENDOR)
        account_id = conn["extra"]["account_id"]
        base_url, api_key = conn["extra"]["base_url"], conn["password"]
        operator_runs, staged = [0], [""]
        clients: dict[str, Callable[[], int]] = {
            "operator": lambda: _operator_read(root, operator_runs, page_size, staged),
            "bare": lambda: _bare_read(base_url, api_key, account_id, page_size, root),
            "hook": lambda: _hook_read(account_id, page_size),
        }
        for read in clients.values():  # warm-up: imports, connection lookup, first sockets
            _measure(read, info)
        _same_lines(staged[0], root)  # the same records, byte for byte
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in clients}
        for rep in range(repetitions):
            names = list(clients) if rep % 2 == 0 else list(reversed(clients))
            for name in names:
                results[name].append(_measure(clients[name], info))
    first = results["bare"][0]
    runs = [r for name in results for r in results[name]]
    if any((r["routes"], r["messages"]) != (first["routes"], first["messages"]) for r in runs):
        raise RuntimeError(f"the clients did not make the same calls: {results}")
    stats = {
        name: {
            k: (statistics.median(r[k] for r in rs), min(r[k] for r in rs), max(r[k] for r in rs))
            for k in ("wall", "cpu")
        }
        for name, rs in results.items()
    }
    wall_ratio = stats["operator"]["wall"][0] / stats["bare"]["wall"][0]
    cpu_ratio = stats["operator"]["cpu"][0] / stats["bare"]["cpu"][0]
    calls = int(first["calls"])
    return {
        "benchmark": "overhead",
        "conversations": conversations,
        "calls": calls,
        "messages": first["messages"],
        "repetitions": repetitions,
        # (median, min, max) in seconds, per client and measure
        "operator_wall_s": stats["operator"]["wall"],
        "operator_cpu_s": stats["operator"]["cpu"],
        "bare_wall_s": stats["bare"]["wall"],
        "bare_cpu_s": stats["bare"]["cpu"],
        "hook_wall_s": stats["hook"]["wall"],
        "hook_cpu_s": stats["hook"]["cpu"],
        "wall_ratio": wall_ratio,
        "cpu_ratio": cpu_ratio,
        "hook_wall_ratio": stats["hook"]["wall"][0] / stats["bare"]["wall"][0],
        "hook_cpu_ratio": stats["hook"]["cpu"][0] / stats["bare"]["cpu"][0],
        "target": f"operator <= {TARGET}x the plain loop, wall and CPU",
        "met": wall_ratio <= TARGET and cpu_ratio <= TARGET,
    }


if __name__ == "__main__":
    quiet()
    result = run()
    for name in ("operator", "bare", "hook"):
        for measure in ("wall", "cpu"):
            median, low, high = result[f"{name}_{measure}_s"]
            print(f"{name:8} {measure:4} median {median:.3f} s, range {low:.3f}-{high:.3f} s")
    print_table("Overhead: the retrieve operator vs a plain requests loop (same calls)", [result])
