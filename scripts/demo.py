"""
`make demo`: every example DAG end to end against the bundled sandbox, offline, with nothing to configure.

1. starts the sandbox (all four vendors) in this process;
2. makes an Airflow home under ``.demo/`` with the embedded SQLite metadata database, the connections
   pointing at the sandbox, a SQLite "warehouse" and an export folder;
3. runs every example DAG with ``airflow dags test`` (deferred tasks run their triggers inline);
4. lets time pass in the sandbox (new messages arrive) and runs the inbox DAGs again;
5. checks the exported files and tables against the sandbox's ground truth and prints a summary table.

``--standalone`` instead starts ``airflow standalone`` with the sandbox and the connections, so the DAGs
can be watched in the UI (Ctrl-C stops both).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
}

FIRST_PASS = ["linkmsg_koneksi_outreach"]
INBOX_DAGS: list[str] = []
WAREHOUSE = DEMO / "warehouse.db"


def environment(sandbox) -> dict[str, str]:
    """The environment of every Airflow command of the demo."""
    env = dict(os.environ)
    env.update(sandbox.env())
    env.update(
        {
            "AIRFLOW_HOME": str(DEMO / "airflow"),
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__LINKMSG__STAGING_PATH": str(DEMO / "staging"),
            "AIRFLOW_VAR_LINKMSG_EXPORT_PATH": str(DEMO / "export"),
            "AIRFLOW_CONN_LINKMSG_WAREHOUSE": json.dumps({"conn_type": "sqlite", "host": str(WAREHOUSE)}),
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
        }
    )
    return env


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


def warehouse_keys(table: str, vendor: str) -> set[str]:
    with sqlite3.connect(WAREHOUSE) as db:
        return {row[0] for row in db.execute(f"SELECT record_key FROM {table} WHERE vendor = ?", (vendor,))}


def exported_file_keys(vendor_dir: Path) -> set[str]:
    keys: set[str] = set()
    for path in vendor_dir.rglob("*.jsonl"):
        with open(path) as f:
            keys.update(json.loads(line)["key"] for line in f)
    return keys


def koneksi_truth_keys(truth: dict[str, Any]) -> set[str]:
    return {
        f"koneksi:{request_id}:{m['lead_id']}:{m['message_type']}"
        for request_id, request in truth["requests"].items()
        for m in request["messages"]
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--standalone", action="store_true", help="start `airflow standalone` instead")
    args = parser.parse_args()

    from airflow_provider_linkmsg.sandbox import Sandbox

    shutil.rmtree(DEMO, ignore_errors=True)
    (DEMO / "logs").mkdir(parents=True)
    started = time.monotonic()
    with Sandbox(seed=0, sizes=SIZES) as sandbox:
        env = environment(sandbox)
        print(f"sandbox at {sandbox.base_url}; Airflow home {DEMO / 'airflow'}")
        airflow(env, "db", "migrate", log=DEMO / "logs" / "db-migrate.log")
        if args.standalone:
            print("starting `airflow standalone` (Ctrl-C to stop); the DAGs use the sandbox's connections")
            subprocess.run([str(AIRFLOW), "standalone"], env=env, check=False)
            return 0

        timings: dict[str, float] = {}
        print("first pass:")
        for dag_id in FIRST_PASS:
            timings[dag_id] = run_dag(env, dag_id, "pass 1")
        stats_first = sandbox.stats()

        if INBOX_DAGS:
            sandbox.advance(seconds=3600)
            print("one hour later, with new messages in the sandbox:")
            for dag_id in INBOX_DAGS:
                timings[dag_id] += run_dag(env, dag_id, "pass 2")

        failures = []
        rows = []
        truth = koneksi_truth_keys(sandbox.truth("koneksi"))
        rows.append(
            {
                "vendor": "koneksi",
                "exported (sql)": len(warehouse_keys("linkmsg_generated_messages", "koneksi")),
                "exported (files)": len(exported_file_keys(DEMO / "export" / "koneksi")),
                "ground truth": len(truth),
            }
        )
        if warehouse_keys("linkmsg_generated_messages", "koneksi") != truth:
            failures.append("koneksi: the warehouse table differs from the ground truth")
        if exported_file_keys(DEMO / "export" / "koneksi") != truth:
            failures.append("koneksi: the exported files differ from the ground truth")
        calls = sandbox.stats().get("calls", {})
        for row in rows:
            row["api calls"] = int(sum(v for k, v in calls.items() if k.startswith(row["vendor"] + " ")))
            row["credits"] = sandbox.stats().get("credits", {}).get(row["vendor"], 0)
        del stats_first

    print()
    cols = list(rows[0])
    print("  ".join(f"{c:>16}" for c in cols))
    for row in rows:
        print("  ".join(f"{row[c]!s:>16}" for c in cols))
    print(f"\nwarehouse: {WAREHOUSE.relative_to(ROOT)}   files: {(DEMO / 'export').relative_to(ROOT)}")
    print(f"demo finished in {time.monotonic() - started:.0f} s")
    if failures:
        print("\n".join(["MISMATCH:", *failures]))
        return 1
    print("every export equals the sandbox's ground truth")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
