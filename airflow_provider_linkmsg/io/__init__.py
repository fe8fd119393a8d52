"""
Storage of staged records and state.

- :mod:`.staging`: records as JSON Lines part files plus a manifest, written atomically.
- :mod:`.state`: JSON state documents and watermarks committed only after the data is durable.
- :mod:`.files` and :mod:`.sql`: the export to files (JSONL, CSV, Parquet) and to SQL databases;
  :mod:`.file_export` and :mod:`.keyindex`: one row per key in a file destination.
"""

from __future__ import annotations

from airflow_provider_linkmsg.io.staging import (
    Manifest,
    StagingWriter,
    atomic_write,
    iter_records,
    safe_name,
)
from airflow_provider_linkmsg.io.state import JsonState, StagedRun, WatermarkStore, commit_after

__all__ = [
    "JsonState",
    "Manifest",
    "StagedRun",
    "StagingWriter",
    "WatermarkStore",
    "atomic_write",
    "commit_after",
    "iter_records",
    "safe_name",
]
