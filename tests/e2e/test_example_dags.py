"""The example DAGs: every file imports cleanly and without heavy modules at the top level."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
FILES = sorted(EXAMPLES.glob("example_*.py"))
#: modules a DAG file must not pull in at parse time (they belong inside tasks)
HEAVY = ("pyarrow", "pandas", "psycopg", "psycopg2", "openlineage.client", "selenium")

PROBE = r"""
import json, sys, time
from airflow.providers.common.compat import sdk  # Airflow itself is not the DAG file's cost
sdk.DAG, sdk.task, sdk.Asset  # (the compat layer resolves its names lazily)
try:
    from airflow.dag_processing.dagbag import DagBag  # Airflow >= 3.1
except ImportError:
    from airflow.models.dagbag import DagBag
before = set(sys.modules)
started = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
seconds = time.perf_counter() - started
print(json.dumps({"seconds": seconds, "errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "dags": sorted(bag.dags), "new_modules": sorted(set(sys.modules) - before)}))
"""


def test_there_is_an_example_dag_per_vendor_and_more():
    names = {p.stem for p in FILES}
    assert {
        "example_koneksi_outreach",
        "example_connectsafely_inbox",
        "example_linkedapi_inbox",
        "example_linkup_inbox",
        "example_unified_inbox",
        "example_new_messages_report",
    } <= names


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_each_example_dag_parses_cleanly_without_heavy_imports(path):
    """
    Parsed in a fresh interpreter, so the imported modules are the file's own. What keeps parsing cheap is
    checked by what is imported, not by a clock (a loaded machine would fail a timed assertion).
    """
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(path)], capture_output=True, text=True, timeout=180, check=True
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["errors"] == {}
    assert len(report["dags"]) == 1 and report["dags"][0].startswith("linkmsg_")
    heavy = [m for m in report["new_modules"] if m.split(".")[0] in HEAVY or m in HEAVY]
    assert heavy == [], f"{path.name} imports {heavy} at parse time"
    print(f"{path.name}: parsed in {report['seconds']:.3f} s (informational)")
