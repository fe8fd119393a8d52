"""
`make demo`: every example DAG end to end against the bundled sandbox, offline, with nothing to configure.

1. starts the sandbox (all four vendors) in this process;
2. makes an Airflow home under ``.demo/`` with the embedded SQLite metadata database, the connections
   pointing at the sandbox, a SQLite "warehouse" and an export folder;
3. runs every example DAG with ``airflow dags test`` (deferred tasks run their triggers inline);
4. lets time pass in the sandbox (new messages arrive) and runs the inbox DAGs again;
5. one event-driven run: a Koneksi completion webhook, received by the provider's plugin in a real
   ``airflow api-server``, starts the export DAG scheduled on its asset (``demo_events.py``);
6. checks the exported files and tables against the sandbox's ground truth and prints a summary table.

To watch the DAGs in the UI instead, ``make airflow`` (``scripts/airflow_local.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / ".demo"
AIRFLOW = Path(sys.executable).with_name("airflow")

#: sizes that keep the demo quick and still show paging, failures and incremental reads
SIZES: dict[str, dict[str, Any]] = {
    "koneksi": {"seconds_per_message": 0.05, "failure_share": 0.2, "webhook_secret": "demo-webhook-secret"},
    "connectsafely": {"accounts": 2, "conversations": 40, "messages": 12},
    "linkup": {"accounts": 2, "conversations": 40, "messages": 12},
    "linkedapi": {"persons": 12, "not_found": 2, "sync_seconds": 1},
}
#: what arrives in the hour between the two passes
NEWS = {
    "seconds": 3600,
    "connectsafely": {"conversations": 4, "messages": 2},
    "linkup": {"conversations": 4, "messages": 2},
    "linkedapi": {"persons": 3, "messages": 2},
}
INBOX_VENDORS = ("connectsafely", "linkedapi", "linkup")
FIRST_PASS = [
    "linkmsg_koneksi_outreach",
    "linkmsg_connectsafely_inbox",
    "linkmsg_linkedapi_inbox",
    "linkmsg_linkup_inbox",
    "linkmsg_unified_inbox",
    "linkmsg_new_messages_report",
]
INBOX_DAGS = [
    "linkmsg_connectsafely_inbox",
    "linkmsg_linkedapi_inbox",
    "linkmsg_linkup_inbox",
    "linkmsg_unified_inbox",
    "linkmsg_new_messages_report",
]
WAREHOUSE = DEMO / "warehouse.db"
STAGING = DEMO / "staging"
EXPORT = DEMO / "export"


def environment(sandbox) -> dict[str, str]:
    """The environment of every Airflow command of the demo."""
    env = dict(os.environ)
    env["PATH"] = (
        f"{AIRFLOW.parent}{os.pathsep}{env.get('PATH', '')}"  # Airflow's own subprocesses run `airflow ...`
    )
    env.update(sandbox.env())
    env.update(
        {
            "AIRFLOW_HOME": str(DEMO / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LINKMSG__STAGING_PATH": str(STAGING),
            "AIRFLOW_VAR_LINKMSG_EXPORT_PATH": str(EXPORT),
            "AIRFLOW_CONN_LINKMSG_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(WAREHOUSE)}),
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
            # the Koneksi request needs a completion_notification_url (from [linkmsg] webhook_base_url);
            # the `dags test` passes poll for completion and have no receiver: a closed loopback port (the
            # event-driven run below points it at its own API server)
            "AIRFLOW__LINKMSG__WEBHOOK_BASE_URL": f"http://127.0.0.1:{closed_port()}/",
        }
    )
    return env


def closed_port() -> int:
    """A loopback port nothing listens on (taken free from the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def airflow(env: dict[str, str], *args: str, log: Path | None = None) -> float:
    """Run an Airflow CLI command; its output goes to ``log``. Returns the seconds it took."""
    started = time.monotonic()
    with open(log or os.devnull, "w") as out:
        result = subprocess.run([str(AIRFLOW), *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        tail = log.read_text()[-3000:] if log else ""
        raise SystemExit(f"`airflow {' '.join(args)}` failed (exit {result.returncode}); log {log}:\n{tail}")
    return time.monotonic() - started


def run_dag(env: dict[str, str], dag_id: str, label: str) -> float:
    log = DEMO / "logs" / f"{dag_id}-{label.replace(' ', '')}.log"
    seconds = airflow(env, "dags", "test", dag_id, log=log)
    print(f"  {dag_id:<34} {label:<12} ok  {seconds:5.1f} s   log: {log.relative_to(ROOT)}")
    return seconds


def warehouse_ids(table: str, vendor: str, column: str = "message_id") -> set[str]:
    with sqlite3.connect(WAREHOUSE) as db:
        return {row[0] for row in db.execute(f"SELECT {column} FROM {table} WHERE vendor = ?", (vendor,))}


def exported_file_ids(vendor_dir: Path, column: str = "message_id") -> set[str]:
    """Ids in every exported file of a vendor (JSON Lines, CSV or Parquet)."""
    ids: set[str] = set()
    for path in vendor_dir.rglob("*"):
        if path.name.endswith(".jsonl"):
            with open(path) as f:
                ids.update(json.loads(line)[column] for line in f)
        elif path.name.endswith(".parquet"):
            import pyarrow.parquet as pq

            ids.update(pq.read_table(path, columns=[column]).column(column).to_pylist())
    return ids


def truth_ids(sandbox, vendor: str) -> set[str]:
    """Ids a correct client ends up with: generated-message keys for Koneksi, message ids otherwise."""
    truth = sandbox.truth(vendor)
    if vendor == "koneksi":
        return {
            f"koneksi:{request_id}:{m['lead_id']}:{m['message_type']}"
            for request_id, request in truth["requests"].items()
            for m in request["messages"]
        }
    if vendor == "linkedapi":
        return {m["id"] for account in truth["accounts"].values() for m in account["messages"]}
    return {m["message_id"] for m in truth["messages"]}


def staged_since(before: set[Path], vendor: str, unified: bool) -> int:
    """Records staged for ``vendor`` by the manifests written after ``before`` was taken."""
    root = STAGING / "unified" if unified else STAGING
    total = 0
    for path in (root / vendor).glob("*/manifest.json"):
        if path not in before:
            total += json.loads(path.read_text())["record_count"]
    return total


def usage(sandbox, vendor: str) -> tuple[int, float]:
    stats = sandbox.stats()
    calls = int(sum(v for k, v in stats.get("calls", {}).items() if k.startswith(vendor + " ")))
    return calls, stats.get("credits", {}).get(vendor, 0)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.parse_args()

    from airflow_provider_linkmsg.sandbox import Sandbox

    shutil.rmtree(DEMO, ignore_errors=True)
    (DEMO / "logs").mkdir(parents=True)
    started = time.monotonic()
    with Sandbox(seed=0, sizes=SIZES) as sandbox:
        env = environment(sandbox)
        print(f"sandbox at {sandbox.base_url}; Airflow home {DEMO / 'airflow'}")
        airflow(env, "db", "migrate", log=DEMO / "logs" / "db-migrate.log")
        from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

        if not AIRFLOW_V_3_0_PLUS:  # 2.x `dags test` records alias events only for aliases already in the DB
            airflow(env, "dags", "reserialize", log=DEMO / "logs" / "dags-reserialize.log")
        timings: dict[str, float] = {}
        print("first pass:")
        for dag_id in FIRST_PASS:
            timings[dag_id] = run_dag(env, dag_id, "pass 1")
        first_usage = {v: usage(sandbox, v) for v in (*INBOX_VENDORS, "koneksi")}
        truth_before = {v: truth_ids(sandbox, v) for v in INBOX_VENDORS}
        manifests_before = set(STAGING.rglob("manifest.json"))

        sandbox.advance(**NEWS)
        print("one hour later, new messages have arrived in the sandbox:")
        for dag_id in INBOX_DAGS:
            timings[dag_id] += run_dag(env, dag_id, "pass 2")

        if AIRFLOW_V_3_0_PLUS:
            from demo_events import DAG_ID, webhook_run

            print("event-driven: a Koneksi completion webhook starts the export DAG scheduled on its asset:")
            leads = str(ROOT / "example_dags" / "data" / "koneksi_leads.json")
            timings[DAG_ID] = webhook_run(airflow, AIRFLOW, env, sandbox, DEMO, leads)
        else:
            print(
                "event-driven part skipped: the webhook plugin needs Airflow 3's API server "
                "(this is Airflow 2); the exports below come from the scheduled DAGs only"
            )

        failures: list[str] = []
        rows = []
        for vendor in ("koneksi", *INBOX_VENDORS):
            table, column = (
                ("linkmsg_generated_messages", "record_key")
                if vendor == "koneksi"
                else ("linkmsg_messages", "message_id")
            )
            truth = truth_ids(sandbox, vendor)
            in_table = warehouse_ids(table, vendor, column)
            in_files = exported_file_ids(EXPORT / vendor, "key" if vendor == "koneksi" else column)
            calls, credits = usage(sandbox, vendor)
            row = {
                "vendor": vendor,
                "ground truth": len(truth),
                "in table": len(in_table),
                "in files": len(in_files),
                "api calls": calls,
                "credits": credits,
            }
            if in_table != truth:
                failures.append(f"{vendor}: table {table} differs from the ground truth")
            if in_files != truth:
                failures.append(f"{vendor}: the exported files differ from the ground truth")
            if vendor in INBOX_VENDORS:
                new = len(truth - truth_before[vendor])
                staged = staged_since(manifests_before, vendor, unified=False)
                staged_unified = staged_since(manifests_before, vendor, unified=True)
                row.update(
                    {
                        "new in pass 2": new,
                        "staged pass 2": staged,
                        "pass 2 calls": calls - first_usage[vendor][0],
                        "pass 2 credits": credits - first_usage[vendor][1],
                    }
                )
                if staged != new or staged_unified != new:
                    failures.append(
                        f"{vendor}: pass 2 staged {staged} (unified DAG: {staged_unified}), not the {new} new messages"
                    )
            rows.append(row)

    print()
    cols = list(dict.fromkeys(c for row in rows for c in row))
    widths = {c: max(len(c), *(len(str(row.get(c, ""))) for row in rows)) for c in cols}
    print("  ".join(c.rjust(widths[c]) for c in cols))
    for row in rows:
        print("  ".join(str(row.get(c, "")).rjust(widths[c]) for c in cols))
    print(
        "\nseconds per DAG (both passes): "
        + ", ".join(f"{d.removeprefix('linkmsg_')} {t:.0f}" for d, t in timings.items())
    )
    print(f"warehouse: {WAREHOUSE.relative_to(ROOT)}   files: {EXPORT.relative_to(ROOT)}")
    print(f"demo finished in {time.monotonic() - started:.0f} s")
    if failures:
        print("\n".join(["MISMATCH:", *failures]))
        return 1
    print("every export equals the sandbox's ground truth")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
