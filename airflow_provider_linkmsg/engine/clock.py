"""
Vendor times against our clock: none from the future becomes a watermark, an activity or a sweep marker.

A vendor's time (a message's ``sent_at``, a conversation's listed activity) is *from the future* when it is
more than :data:`CLOCK_SLACK` after our clock at the moment it is seen (never earlier than the run's
start). The response schemas accept times up to a day ahead (clock skew), but a watermark or a sweep
marker taken from such a time would hide every message that arrives before the vendor's clock reaches
it: the next reads would start after them. So, in the engine:

- a watermark's ``sent_at`` and ``last_activity`` from the future become the run's start time (the next
  read reaches back to it; what is staged already is dropped by id), and the sweep marker's ``through``
  likewise;
- a conversation listed with activity from the future keeps no listing marker until a staged message
  accounts for that activity: it is read again (from its watermark) on each run until then;
- such activity does not deepen a read (no late, older message moves activity into the future);
- a stored watermark or sweep marker already from the future (written by an older version, or by a host
  whose clock was ahead) is not trusted: the conversation is read in full once (de-duplicated by its
  staged ids) and the shortcut lists in full.

Each case logs a warning naming the vendor, account, conversation and time.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow_provider_linkmsg.records import parse_utc, to_utc_iso

#: how far ahead of our clock a vendor time may be and still be trusted (the vendor's clock skew)
CLOCK_SLACK = timedelta(minutes=5)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RunClock:
    """
    Our clock during one run.

    :param now: the current time (UTC, aware); tests give their own.
    :param slack: how far ahead of it a vendor time may be (:data:`CLOCK_SLACK`).
    """

    def __init__(self, now: Callable[[], datetime] | None = None, slack: timedelta = CLOCK_SLACK) -> None:
        self._now = now if now is not None else (lambda: _utc_now())
        self.slack = slack
        self._start = self._now()
        #: the run's start, UTC ISO-8601: what a time from the future is replaced by
        self.started = to_utc_iso(self._start)

    def horizon(self) -> str:
        """The latest vendor time trusted now (UTC ISO-8601)."""
        return to_utc_iso(max(self._now(), self._start) + self.slack)

    def ahead(self, value: str | None) -> bool:
        """Whether ``value`` (UTC ISO-8601, as :func:`to_utc_iso` writes it) is from the future."""
        if not value:
            return False
        now = self._now()
        latest = (now if now > self._start else self._start) + self.slack
        return parse_utc(value) > (latest if latest.tzinfo is not None else latest.replace(tzinfo=UTC))

    def clamp(self, value: str | None) -> str | None:
        """``value``, or the run's start when it is from the future."""
        return self.started if self.ahead(value) else value


def trusted_watermark(watermark: dict[str, Any] | None, clock: RunClock) -> tuple[dict[str, Any] | None, str]:
    """
    A stored watermark as far as it can be trusted, and which of its times was from the future (``""``:
    none). Such a watermark keeps only its staged ids: the conversation is read in full and de-duplicated.
    """
    if not watermark:
        return watermark, ""
    for name in ("sent_at", "last_activity"):
        if clock.ahead(watermark.get(name)):
            return {"recent": dict(watermark.get("recent") or {})}, name
    return watermark, ""


def trusted_sweep(sweep: dict[str, Any] | None, clock: RunClock) -> dict[str, Any] | None:
    """A stored sweep marker, or ``None`` (list in full) when its ``through`` is from the future."""
    if sweep and clock.ahead(sweep.get("through")):
        return None
    return sweep
