"""
Progress lines of the export operators: files written (or batches committed) done and left, and rows
written of the staged total, every ``progress_seconds`` while the export runs
(:class:`~airflow_provider_linkmsg.engine.progress.Progress`, the retrieves' helper).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from airflow_provider_linkmsg.engine.progress import Progress, check_interval
from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.io.manifest import Manifest


def check_progress_seconds(operator: Any) -> float:
    """The operator's ``progress_seconds``; a validation error naming it, before anything is read or written."""
    try:
        return check_interval(operator.progress_seconds)
    except ValueError as error:
        raise LinkMsgValidationError(str(error), field="progress_seconds") from None


def export_progress(
    operator: Any, label: str, manifests: Sequence[Manifest], *, unit: str, batch: int | None = None
) -> Progress:
    """
    A :class:`Progress` in its ``exporting`` phase over ``manifests``: its total is their part files, or
    with ``batch`` their batches of that many rows (one per started batch of each manifest); its records
    total is their staged records.
    """
    if batch is None:
        total = sum(len(m.files) for m in manifests)
    else:
        total = sum(math.ceil(m.record_count / batch) for m in manifests)
    progress = Progress(operator.log, label, interval=check_progress_seconds(operator))
    progress.start_phase(
        "exporting", unit=unit, total=total, records_total=sum(m.record_count for m in manifests)
    )
    return progress
