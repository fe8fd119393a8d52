"""
Storage of staged records and state.

- :mod:`.staging`: records as JSON Lines part files plus a manifest, written atomically.
- :mod:`.state`: JSON state documents and watermarks committed only after the data is durable.
- :mod:`.files` and :mod:`.sql`: the export to files (JSONL, CSV, Parquet) and to SQL databases;
  :mod:`.file_export` and :mod:`.keyindex`: one row per key in a file destination.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_linkmsg.io.staging import (
        Manifest,
        StagingWriter,
        atomic_write,
        iter_records,
        safe_name,
    )
    from airflow_provider_linkmsg.io.state import JsonState, StagedRun, WatermarkStore, commit_after

#: name -> module; loaded on first use, so that importing one io module (the export operator imports
#: ``io.sql`` for its defaults) does not load staging and state into every DAG file
_EXPORTS = {
    "Manifest": "staging",
    "StagingWriter": "staging",
    "atomic_write": "staging",
    "iter_records": "staging",
    "safe_name": "staging",
    "JsonState": "state",
    "StagedRun": "state",
    "WatermarkStore": "state",
    "commit_after": "state",
}

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


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
