"""
Helpers shared by the benchmarks: a sandbox in its own process, its admin API, connections and the table.

A benchmark's client runs in this process and the sandbox in another (``linkmsg-sandbox``), so the two do
not share a GIL and the client's CPU time (``time.process_time()``) is the client's alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests


@contextmanager
def sandbox_process(seed: int = 0, sizes: dict[str, Any] | None = None):
    """Run ``linkmsg-sandbox`` in a separate process (so it does not share our GIL); yield its first line."""
    script = Path(sys.executable).with_name("linkmsg-sandbox")
    proc = subprocess.Popen(
        [str(script), "--port", "0", "--seed", str(seed), "--sizes", json.dumps(sizes or {})],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        info = json.loads(proc.stdout.readline())
        yield info
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def use_connections(info: dict[str, Any]) -> None:
    """Point this process's Airflow connections at the sandbox."""
    os.environ.update(info["connections"])


def connection(info: dict[str, Any], vendor: str) -> dict[str, Any]:
    """The sandbox's Airflow connection of ``vendor`` (JSON form: ``password``, ``extra`` ...)."""
    return json.loads(info["connections"][f"AIRFLOW_CONN_{vendor.upper()}_DEFAULT"])


def set_extra(info: dict[str, Any], vendor: str, **extra: Any) -> dict[str, Any]:
    """Change extras of ``<vendor>_default`` (in ``info`` and this process's environment); returns it."""
    conn = connection(info, vendor)
    conn["extra"].update(extra)
    info["connections"][f"AIRFLOW_CONN_{vendor.upper()}_DEFAULT"] = json.dumps(conn)
    use_connections(info)
    return conn


def admin(info: dict[str, Any], method: str, path: str, body: Any = None) -> Any:
    """Call the sandbox's admin API (``/_sandbox{path}``) and return its JSON answer."""
    response = requests.request(method, f"{info['base_url']}/_sandbox{path}", json=body, timeout=30)
    response.raise_for_status()
    return response.json()


def counted(stats: dict[str, Any], group: str, prefix: str = "") -> int:
    """The sum of a sandbox counter group (``calls``, ``reads`` ...) over keys starting with ``prefix``."""
    return int(sum(v for k, v in (stats.get(group) or {}).items() if k.startswith(prefix)))


def task_context(run_id: str, task_id: str = "retrieve") -> dict[str, Any]:
    """The little of a task context that the retrieve operators read, for calling ``execute`` directly."""
    ti = SimpleNamespace(dag_id="bench", task_id=task_id, run_id=run_id, map_index=-1)
    return {"ti": ti, "run_id": run_id}


def quiet() -> None:
    """
    Silence the operators' and hooks' log lines (the figures are the output).

    Takes effect when called before Airflow is imported (Airflow reads its log level once).
    """
    import logging

    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    logging.disable(logging.WARNING)


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    """A plain aligned table."""
    if not rows:
        return
    cols = list(rows[0])
    widths = {c: max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in cols}
    print(f"\n{title}")
    print("  ".join(c.ljust(widths[c]) for c in cols))
    for r in rows:
        print("  ".join(_fmt(r.get(c)).ljust(widths[c]) for c in cols))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
