"""Helpers shared by the benchmarks: a sandbox in its own process, and the results table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any


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
