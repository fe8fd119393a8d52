"""
Progress lines of long work (listing, reading, exporting), driven by time (no Airflow imports).

A :class:`Progress` logs one line every ``interval`` seconds from a daemon thread while the work runs:
what is done, what is left, and the calls and credits so far. The interval is bounded
(:data:`MIN_INTERVAL` to :data:`MAX_INTERVAL` seconds): lines come at most every few seconds and at least
every 30 s, whatever the work does meanwhile (a slow call included). Work shorter than one interval logs
no progress line: its summary line says it all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

#: default seconds between two progress lines
DEFAULT_INTERVAL = 10.0
#: bounds of ``interval``: at most every few seconds, at least every 30 s
MIN_INTERVAL = 1.0
MAX_INTERVAL = 30.0


def check_interval(value: Any, *, field: str = "progress_seconds") -> float:
    """``value`` as seconds between progress lines; a :class:`ValueError` naming ``field`` when out of bounds."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not MIN_INTERVAL <= value <= MAX_INTERVAL
    ):
        raise ValueError(
            f"{field} must be a number of seconds from {MIN_INTERVAL:g} to {MAX_INTERVAL:g}, got {value!r}"
        )
    return float(value)


class Progress:
    """
    Log ``"{label}: {phase}: {done}/{total} {unit} done, {left} left, ...; {calls} call(s), {credits}
    credit(s) so far ({elapsed} s)"`` every ``interval`` seconds while in its ``with`` block.

    :param log: a logger (``info``); ``None`` logs nothing.
    :param label: what the work is about (``"linkup acc_1"``).
    :param usage: the hook's counters, ``{"api_calls": n, "credits": x}`` (``None``: work without vendor
        calls, whose line shows no calls or credits).
    :param interval: seconds between lines (bounded, see :func:`check_interval`).
    :param clock: a monotonic clock (tests).
    """

    def __init__(
        self,
        log: Any,
        label: str,
        *,
        usage: Callable[[], dict[str, float]] | None = None,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log = log
        self.label = label
        self.usage = usage
        self.interval = check_interval(interval, field="interval")
        self.clock = clock
        self.phase = "starting"
        self.unit = "item(s)"
        self.done = 0
        self.total: int | None = None
        self.records = 0
        self.records_total: int | None = None
        self.lines = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = clock()

    # ---- what the work reports --------------------------------------------------------------------------
    def start_phase(
        self, phase: str, *, unit: str, total: int | None = None, records_total: int | None = None
    ) -> None:
        """
        A new phase (``"listing"``, ``"reading"``, ``"exporting"``), its unit and total when known, and the
        records it will carry when known (an export's rows: the line then shows ``done/total record(s)``).
        """
        with self._lock:
            self.phase, self.unit, self.total, self.done = phase, unit, total, 0
            self.records_total = records_total

    def advance(self, done: int = 1, *, records: int = 0) -> None:
        """``done`` more units of the phase, carrying ``records`` more records (messages, rows)."""
        with self._lock:
            self.done += done
            self.records += records

    # ---- the line -------------------------------------------------------------------------------------
    def line(self) -> str:
        """The current progress line (without the label)."""
        with self._lock:
            phase, unit, done, total, records = self.phase, self.unit, self.done, self.total, self.records
            records_total = self.records_total
        left = f", {total - done} left" if total is not None else ""
        shown = f"{done}/{total}" if total is not None else f"{done}"
        rows = f"{records}/{records_total}" if records_total is not None else f"{records}"
        elapsed = self.clock() - self._started
        if self.usage is None:  # work without vendor calls (an export): no calls or credits to show
            return f"{phase}: {shown} {unit} done{left}, {rows} record(s) so far ({elapsed:.0f} s)"
        try:
            stats = self.usage()
        except Exception:  # a progress line never fails the work
            stats = {}
        calls = int(stats.get("api_calls", 0))
        credits = stats.get("credits", 0)
        return (
            f"{phase}: {shown} {unit} done{left}, {rows} record(s); "
            f"{calls} call(s), {credits:g} credit(s) so far ({elapsed:.0f} s)"
        )

    def emit(self) -> None:
        """Log the line now."""
        if self.log is not None:
            self.log.info("%s: %s", self.label, self.line())
            self.lines += 1

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.emit()

    def __enter__(self) -> Progress:
        self._started = self.clock()
        self._thread = threading.Thread(target=self._loop, name="linkmsg-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
