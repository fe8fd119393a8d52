"""
Incremental economy: API calls (and LinkupAPI credits) of three runs of the retrieve operator over the same
staging store: (a) a full first run, (b) a re-run with nothing changed, (c) a re-run after new messages
arrived in 1 % of the conversations (the sandbox's ``advance``). LinkupAPI charges credits, ConnectSafely
does not; both are measured.

The sandbox counts listing calls and message reads separately (its ``lists`` and ``reads`` counters), and
each run's staged records are checked against what the sandbox added. Target: the unchanged re-run, with the
default settings, makes at most one listing call per page of conversations and no message read. (Every
page is listed by default; the opt-in ``listing_shortcut`` would list one page.)
"""

from __future__ import annotations

import math
import tempfile
from typing import Any

from bench.common import admin, counted, print_table, quiet, sandbox_process, task_context, use_connections

#: the conversations per listing call of each vendor's operator
LISTING_PAGE = {"linkup": 50, "connectsafely": 100}


def _operator(vendor: str, root: str):
    if vendor == "linkup":
        from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator

        return LinkupRetrieveMessagesOperator(task_id="retrieve", staging_path=root)
    from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator

    return ConnectSafelyRetrieveMessagesOperator(task_id="retrieve", staging_path=root)


def _run(info: dict[str, Any], vendor: str, root: str, run_id: str) -> dict[str, Any]:
    admin(info, "POST", "/stats/reset")
    result = _operator(vendor, root).execute(task_context(run_id))
    stats = admin(info, "GET", "/stats")
    return {
        "calls": counted(stats, "calls", vendor),
        "lists": counted(stats, "lists"),
        "reads": counted(stats, "reads"),
        "credits": counted(stats, "credits", vendor),
        "records": result["records"],
    }


def _vendor(info: dict[str, Any], vendor: str, conversations: int, changed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="linkmsg-bench-") as root:
        full = _run(info, vendor, root, "full")
        truth = len(admin(info, "GET", f"/truth/{vendor}")["messages"])
        unchanged = _run(info, vendor, root, "unchanged")
        added = admin(info, "POST", "/advance", {"seconds": 3600, vendor: {"conversations": changed}})
        after = _run(info, vendor, root, "one-percent")
    new = len(added[vendor]["messages"])
    if (full["records"], unchanged["records"], after["records"]) != (truth, 0, new):
        raise RuntimeError(f"{vendor}: staged {full}, {unchanged}, {after}; expected {truth}, 0 and {new}")
    pages = math.ceil(conversations / LISTING_PAGE[vendor])
    return {"pages": pages, "full": full, "unchanged": unchanged, "changed": after}


def run(conversations: int = 1000, vendors: tuple[str, ...] = ("linkup", "connectsafely")) -> list[dict]:
    """
    Three runs per vendor; returns one dict per vendor with the figures, the target and ``met``.

    Each run's figures are ``calls_<run>``, ``lists_<run>``, ``reads_<run>``, ``credits_<run>`` and
    ``records_<run>`` for the runs ``full``, ``unchanged`` and ``changed``.

    :param conversations: conversations of the one account (1 % of them change before the third run).
    :param vendors: which inbox vendors to measure.
    """
    changed = max(1, conversations // 100)
    sizes = {v: {"accounts": 1, "conversations": conversations, "messages": 8} for v in vendors}
    rows = []
    with sandbox_process(sizes=sizes) as info:
        use_connections(info)
        for vendor in vendors:
            runs = _vendor(info, vendor, conversations, changed)
            unchanged = runs["unchanged"]
            rows.append(
                {
                    "benchmark": f"incremental {vendor}",
                    "conversations": conversations,
                    "changed": changed,
                    "listing_pages": runs["pages"],
                    **{
                        f"{k}_{name}": runs[name][k]
                        for name in ("full", "unchanged", "changed")
                        for k in runs[name]
                    },
                    "target": "unchanged: <= 1 list call/page, 0 reads",
                    "met": unchanged["lists"] <= runs["pages"]
                    and unchanged["calls"] == unchanged["lists"]
                    and unchanged["reads"] == 0,
                }
            )
    return rows


if __name__ == "__main__":
    quiet()
    rows = run()
    print_table("Incremental economy: full run, unchanged re-run, re-run after 1% changed", rows)
