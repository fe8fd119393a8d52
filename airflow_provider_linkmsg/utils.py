"""Small helpers shared by the operators: where staged data lives and how a task run is named."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Context

#: environment variable / Airflow option naming the default root of staged data and state
STAGING_ENV = "AIRFLOW__LINKMSG__STAGING_PATH"


def default_staging_root() -> str:
    """
    Root of staged records and watermarks when a task names none.

    ``[linkmsg] staging_path`` in the Airflow configuration (or ``AIRFLOW__LINKMSG__STAGING_PATH``), else
    ``$AIRFLOW_HOME/linkmsg``. Any fsspec URL works (``s3://bucket/linkmsg``), given a ``staging_conn_id``.
    """
    from airflow.providers.common.compat.sdk import conf

    configured = conf.get("linkmsg", "staging_path", fallback=None) or os.environ.get(STAGING_ENV)
    if configured:
        return configured
    home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
    return os.path.join(home, "linkmsg")


def task_run_id(context: Context | dict[str, Any]) -> str:
    """
    A stable, path-safe name for this task run: ``dag_id/run_id/task_id[/map_index]``.

    Stable across task retries (no try number), so a retry overwrites what a failed try staged instead of
    adding a second copy.
    """
    ti = context["ti"]
    run_id = context.get("run_id") or getattr(ti, "run_id", "manual")
    parts = [ti.dag_id, run_id, ti.task_id]
    map_index = getattr(ti, "map_index", -1)
    if map_index is not None and map_index >= 0:
        parts.append(str(map_index))
    return "/".join(re.sub(r"[^A-Za-z0-9._=-]+", "_", str(p)) for p in parts)


def resumed_with_an_earlier_try_event(context: Context | dict[str, Any], deferred_try: int | None) -> bool:
    """
    Whether a task resumed after deferral holds the trigger event of an earlier try, not its own.

    Airflow 3.0 keeps a deferred task's ``next_method`` and ``next_kwargs`` when the try fails (2.x and 3.3
    clear them), so its retry resumes with the event that failed the try before. The deferring try keeps its
    number (in its state store, or in the resume kwargs, which the real triggerer keeps but 3.0's ``dag.test``
    drops); a resume in another try starts afresh.
    """
    current = try_number(context)
    return deferred_try is not None and current is not None and int(deferred_try) != int(current)


def try_number(context: Context | dict[str, Any]) -> int | None:
    """The running try's number (``None`` without a task instance in the context)."""
    return getattr(context.get("ti"), "try_number", None)
