"""
The retry policy: which failures are worth another try, how long to wait before it, and what to say when
the tries run out. ``Retry-After`` (both forms) and the vendors' reset times are parsed here.
"""

from __future__ import annotations

import email.utils
import random
from datetime import UTC, datetime
from typing import Any

from airflow_provider_linkmsg.exceptions import LinkMsgError


class Transient(Exception):
    """A failure worth retrying; carries the typed error to raise once retries run out."""

    def __init__(self, error: LinkMsgError, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.error = error
        self.reason = reason
        self.retry_after = retry_after
        self.answer_lost = getattr(error, "answer_lost", False)


def lost(error: LinkMsgError, reason: str, retry: bool) -> Exception:
    """The vendor may have acted but its answer is lost (cut off, unparsable, timed out): mark it so."""
    error.answer_lost = True
    return Transient(error, reason) if retry else error


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header in either of its forms (delta-seconds or HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


def parse_reset_time(value: Any, *, now: float | None = None) -> float | None:
    """
    Seconds until a rate-limit reset time, as vendors write it: ISO-8601 (``2026-01-01T10:00:00Z``),
    Unix seconds or milliseconds, or (a small number) seconds from now. ``None`` when it is none of these.
    """
    if value is None or isinstance(value, bool) or value == "":
        return None
    current = datetime.now(UTC).timestamp() if now is None else now
    try:
        number = float(value)
    except (TypeError, ValueError):
        try:
            when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - current)
    if number > 1e12:  # Unix milliseconds
        number = number / 1000 - current
    elif number > 1e9:  # Unix seconds
        number -= current
    return max(0.0, number)


def backoff(exc: Transient, attempt: int) -> float:
    """Seconds before retry ``attempt``: what ``Retry-After`` asked, else exponential back-off with jitter."""
    if exc.retry_after is not None:
        return exc.retry_after + random.uniform(0, 0.1)
    base = min(30.0, 0.5 * 2 ** (attempt - 1))
    return random.uniform(base / 2, base)


def gave_up(exc: Transient, attempts: int, waited: float, elapsed: float, max_wait: float) -> LinkMsgError:
    """The error to raise when the retries are spent: what the last failure was and how long it took."""
    budget = ""
    if exc.retry_after is not None and waited + exc.retry_after > max_wait:
        budget = f"; the vendor asked to wait {exc.retry_after:.1f} s more, past the max_retry_wait of {max_wait:.0f} s"
    error = exc.error
    return type(error)(
        f"gave up after {attempts} attempt(s) in {elapsed:.1f} s, {waited:.1f} s of it waiting "
        f"between retries{budget}. Last failure: {exc.reason}",
        vendor=error.vendor,
        method=error.method,
        endpoint=error.endpoint,
        status=error.status,
        code=error.code,
    )
