"""
Peak memory of staging and exporting N messages: it must not grow with N.

Each size runs in fresh processes (one stages, one exports), so every peak RSS is that step's own. The
export writes JSON Lines (gzip), Parquet and a SQLite table through the export operators. Run::

    python bench/bench_memory.py                     # 10,000 and 1,000,000
    python bench/bench_memory.py --sizes 1000 20000  # other sizes

The acceptance bar: exporting 1,000,000 messages peaks within 50 MB of exporting 10,000.
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
    parser.add_argument("--stage", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--export", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

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
