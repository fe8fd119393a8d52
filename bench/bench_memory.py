"""
Peak memory of staging and exporting N messages, and of retrieving them: it must not grow with N.

Each size runs in fresh processes (one stages, one exports), so every peak RSS is that step's own. The
export writes JSON Lines (gzip), Parquet and a SQLite table through the export operators. Run::

    python bench/bench_memory.py                     # 10,000 and 1,000,000
    python bench/bench_memory.py --sizes 1000 20000  # other sizes
    python bench/bench_memory.py --retrieval         # retrieval: 10,000 and 500,000 messages
    python -m bench retrieval                        # the same, as the "retrieval memory" row of make bench

The acceptance bar: exporting 1,000,000 messages peaks within 50 MB of exporting 10,000.

``--retrieval``: a first full read of one ConnectSafely account (1,000 conversations, N messages in all)
by the retrieve operator, against the sandbox in its own process; beside it, in the same run, a plain
``requests`` loop making the same calls and keeping nothing. Each in a fresh process, the sizes and the
two clients interleaved, ``--repeat`` times (median and range). The bar: the operator's peak at 500,000
messages within 30 MB of its peak at 10,000. (The inbox's conversations are fixed: state holds one small
watermark per conversation, so it grows with conversations, never with messages.)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = (10_000, 1_000_000)
LIMIT_MB = 50.0
RETRIEVAL_SIZES = (10_000, 500_000)
RETRIEVAL_CONVERSATIONS = 1000
RETRIEVAL_LIMIT_MB = 30.0
FORMATS = (("jsonl", "gzip"), ("parquet", None))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _messages(n: int):
    from airflow_provider_linkmsg.records import Message

    for i in range(n):
        yield Message(
            vendor="linkup",
            account_id=f"urn:li:account:{i % 50}",
            conversation_id=f"2-{i % 20_000:08d}",
            message_id=f"urn:li:msg:{i:012d}",
            sent_at=f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i % 60:02d}.000000Z",
            direction="outbound" if i % 3 == 0 else "inbound",
            sender_id=f"ACoAA{i % 5000:08d}",
            sender_name=f"Person {i % 5000}",
            text=f"Hi there, following up on our conversation number {i}. " * (1 + i % 4),
            has_attachments=i % 10 == 0,
        )


def _child_stage(size: int, workdir: Path) -> dict:
    from airflow_provider_linkmsg.io.staging import StagingWriter

    start = time.perf_counter()
    with StagingWriter(workdir / "staging", vendor="linkup", record_type="message", run_id="bench") as writer:
        for message in _messages(size):
            writer.write(message)
    manifest = writer.close()
    return {"manifest": str(manifest.path), "seconds": time.perf_counter() - start}


def _child_export(manifest: str, workdir: Path) -> dict:
    from airflow_provider_linkmsg.operators.export import (
        LinkMsgExportToFilesOperator,
        LinkMsgExportToSqlOperator,
    )

    baseline = _peak_rss_mb()
    start = time.perf_counter()
    records, seconds = {}, {}
    for file_format, compression in FORMATS:
        step = time.perf_counter()
        operator = LinkMsgExportToFilesOperator(
            task_id=f"export_{file_format}",
            manifests=manifest,
            destination=str(workdir / "out"),
            file_format=file_format,
            compression=compression,
            outlets=[],
        )
        records[file_format] = operator.execute({})["records"]
        seconds[file_format] = round(time.perf_counter() - step, 1)
    step = time.perf_counter()
    os.environ["AIRFLOW_CONN_LINKMSG_BENCH"] = json.dumps(
        {"conn_type": "sqlite", "host": str(workdir / "bench.db")}
    )
    operator = LinkMsgExportToSqlOperator(
        task_id="export_sql", manifests=manifest, conn_id="linkmsg_bench", batch_size=5000, outlets=[]
    )
    records["sqlite"] = operator.execute({})["records"]
    seconds["sqlite"] = round(time.perf_counter() - step, 1)
    return {
        "records": records,
        "seconds": time.perf_counter() - start,
        "seconds_by_target": seconds,
        "after_imports_mb": baseline,
    }


def _child_retrieve(workdir: Path) -> dict:
    """The retrieve operator's first full read of the sandbox's ConnectSafely account."""
    sys.path.insert(0, str(REPO))
    from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
    from bench.common import task_context

    baseline = _peak_rss_mb()
    start = time.perf_counter()
    operator = ConnectSafelyRetrieveMessagesOperator(
        task_id="retrieve", staging_path=str(workdir / "staging")
    )
    result = operator.execute(task_context("memory"))
    return {
        "records": result["records"],
        "seconds": time.perf_counter() - start,
        "after_imports_mb": baseline,
    }


def _child_plain(workdir: Path) -> dict:
    """A plain ``requests`` loop over the same calls, keeping nothing: the floor a client can reach."""
    import requests

    conn = json.loads(os.environ["AIRFLOW_CONN_CONNECTSAFELY_DEFAULT"])
    base, account = conn["extra"]["base_url"].rstrip("/"), conn["extra"]["account_id"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {conn['password']}"
    baseline = _peak_rss_mb()
    start = time.perf_counter()
    records, cursor = 0, None
    while True:
        params = {"accountId": account, "count": 100, "nextCursor": cursor}
        page = session.get(f"{base}/conversations", params=params, timeout=60).json()
        for conversation in page.get("conversations") or []:
            urn = requests.utils.quote(conversation["conversationUrn"], safe="")
            message_cursor = None
            while True:
                params = {"accountId": account, "count": 100, "cursor": message_cursor}
                messages = session.get(
                    f"{base}/conversations/{urn}/messages", params=params, timeout=60
                ).json()
                records += len(messages.get("messages") or [])
                message_cursor = messages.get("cursor")
                if not messages.get("hasMore") or not message_cursor:
                    break
        cursor = page.get("nextCursor")
        if not page.get("hasMore") or not cursor:
            break
    return {"records": records, "seconds": time.perf_counter() - start, "after_imports_mb": baseline}


def run_retrieval(sizes=RETRIEVAL_SIZES, repeat: int = 1) -> list[dict]:
    """
    Peak RSS of the retrieve operator and of a plain requests loop per size, measured side by side.

    :return: one dict per size: ``size``, ``retrieve_peak_mb`` and ``plain_peak_mb`` (medians), their
        ranges, ``retrieve_seconds``, ``plain_seconds``.
    """
    import statistics

    from bench.common import sandbox_process, use_connections

    peaks: dict[tuple[int, str], list[float]] = {}
    seconds: dict[tuple[int, str], list[float]] = {}
    for _ in range(repeat):
        for size in sizes:  # interleaved: each repetition runs every size and both clients
            per_conversation = max(1, size // RETRIEVAL_CONVERSATIONS)
            sizes_arg = {
                "connectsafely": {
                    "accounts": 1,
                    "conversations": RETRIEVAL_CONVERSATIONS,
                    "messages": per_conversation,
                }
            }
            with sandbox_process(sizes=sizes_arg) as info:
                use_connections(info)
                expected = None
                for client in ("plain", "retrieve"):
                    workdir = Path(tempfile.mkdtemp(prefix=f"linkmsg-bench-{client}-{size}-"))
                    try:
                        out = _run_child(f"--{client}", workdir=workdir)
                    finally:
                        shutil.rmtree(workdir, ignore_errors=True)
                    if expected is not None and out["records"] != expected:
                        raise RuntimeError(
                            f"{client} read {out['records']} messages, the plain loop {expected}"
                        )
                    expected = out["records"]
                    peaks.setdefault((size, client), []).append(out["peak_mb"])
                    seconds.setdefault((size, client), []).append(out["seconds"])
                    peaks.setdefault((size, "messages"), []).append(out["records"])
    rows = []
    for size in sizes:
        row: dict = {"size": size, "messages": int(peaks[(size, "messages")][0])}
        for client in ("retrieve", "plain"):
            values = peaks[(size, client)]
            row[f"{client}_peak_mb"] = round(statistics.median(values), 1)
            row[f"{client}_peak_range_mb"] = [round(min(values), 1), round(max(values), 1)]
            row[f"{client}_seconds"] = round(statistics.median(seconds[(size, client)]), 1)
        rows.append(row)
    return rows


def _run_child(*args: str, workdir: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "AIRFLOW_HOME": str(workdir / "airflow_home")}
    env.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    out = subprocess.run(
        [sys.executable, __file__, *args, "--workdir", str(workdir)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode:
        raise RuntimeError(f"benchmark child {args} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(sizes=DEFAULT_SIZES) -> list[dict]:
    """
    Stage and export each size in fresh processes; returns one dict per size.

    :param sizes: numbers of messages.
    :return: ``[{"size", "stage_peak_mb", "stage_seconds", "export_peak_mb", "export_seconds",
        "export_after_imports_mb", "export_seconds_by_target"}]``.
    """
    results = []
    for size in sizes:
        workdir = Path(tempfile.mkdtemp(prefix=f"linkmsg-bench-{size}-"))
        try:
            staged = _run_child("--stage", str(size), workdir=workdir)
            exported = _run_child("--export", staged["manifest"], workdir=workdir)
            if set(exported["records"].values()) != {size}:
                raise RuntimeError(f"export of {size} messages wrote {exported['records']}")
            results.append(
                {
                    "size": size,
                    "stage_peak_mb": round(staged["peak_mb"], 1),
                    "stage_seconds": round(staged["seconds"], 1),
                    "export_peak_mb": round(exported["peak_mb"], 1),
                    "export_seconds": round(exported["seconds"], 1),
                    "export_after_imports_mb": round(exported["after_imports_mb"], 1),
                    "export_seconds_by_target": exported["seconds_by_target"],
                }
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    parser.add_argument("--retrieval", action="store_true", help="measure retrieval instead")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions of --retrieval (median, range)")
    parser.add_argument("--retrieve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--stage", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--export", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.retrieve or args.plain:  # a child: one client's full read, its peak RSS as JSON
        os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
        result = _child_retrieve(args.workdir) if args.retrieve else _child_plain(args.workdir)
        print(json.dumps({**result, "peak_mb": _peak_rss_mb()}))
        return 0
    if args.retrieval:
        sizes = args.sizes if args.sizes != list(DEFAULT_SIZES) else list(RETRIEVAL_SIZES)
        rows = run_retrieval(sizes, repeat=args.repeat)
        print(
            f"{'messages':>10} {'retrieve peak MB':>17} {'range':>14} {'s':>6} {'plain peak MB':>14} {'range':>14} {'s':>6}"
        )
        for r in rows:
            print(
                f"{r['messages']:>10,} {r['retrieve_peak_mb']:>17.1f} {r['retrieve_peak_range_mb']!s:>14}"
                f" {r['retrieve_seconds']:>6.0f} {r['plain_peak_mb']:>14.1f} {r['plain_peak_range_mb']!s:>14}"
                f" {r['plain_seconds']:>6.0f}"
            )
        growth = rows[-1]["retrieve_peak_mb"] - rows[0]["retrieve_peak_mb"]
        plain = rows[-1]["plain_peak_mb"] - rows[0]["plain_peak_mb"]
        ok = growth <= RETRIEVAL_LIMIT_MB
        print(
            f"retrieval peak growth {rows[0]['messages']:,} -> {rows[-1]['messages']:,} messages: {growth:+.1f} MB"
            f" (plain loop: {plain:+.1f} MB; limit {RETRIEVAL_LIMIT_MB:.0f} MB): {'OK' if ok else 'FAIL'}"
        )
        return 0 if ok else 1

    if args.stage is not None or args.export is not None:  # a child: one step, its peak RSS as JSON
        if args.stage is not None:
            result = _child_stage(args.stage, args.workdir)
        else:
            result = _child_export(args.export, args.workdir)
        print(json.dumps({**result, "peak_mb": _peak_rss_mb()}))
        return 0

    results = run(args.sizes)
    print(f"{'messages':>10} {'stage peak MB':>14} {'stage s':>8} {'export peak MB':>15} {'export s':>9}")
    for r in results:
        print(
            f"{r['size']:>10,} {r['stage_peak_mb']:>14.1f} {r['stage_seconds']:>8.1f}"
            f" {r['export_peak_mb']:>15.1f} {r['export_seconds']:>9.1f}"
        )
    smallest, largest = results[0], results[-1]
    growth = largest["export_peak_mb"] - smallest["export_peak_mb"]
    verdict = "OK" if growth <= LIMIT_MB else "FAIL"
    print(
        f"export peak growth {smallest['size']:,} -> {largest['size']:,} messages: {growth:+.1f} MB"
        f" (limit {LIMIT_MB:.0f} MB): {verdict}"
    )
    return 0 if growth <= LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
