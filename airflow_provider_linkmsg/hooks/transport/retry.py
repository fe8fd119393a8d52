"""
The retry policy: which failures are worth another try, how long to wait before it, and what to say when
the tries run out. ``Retry-After`` (both forms) and the vendors' reset times are parsed here.
"""

from __future__ import annotations

import email.utils
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import tenacity

from airflow_provider_linkmsg.exceptions import LinkMsgError, LinkMsgRateLimitedError, LinkMsgVendorError


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


def dropped(where: dict[str, Any], reason: str, retry: bool) -> Exception:
    """The connection closed after the request was sent: the vendor may have acted, the answer is lost."""
    error = LinkMsgVendorError(
        f"connection dropped after the request was sent ({reason}): the vendor may have acted on it"
        + ("" if retry else "; not sent again, as the call is not idempotent (check the vendor's side)"),
        **where,
    )
    return lost(error, f"connection dropped after the request was sent ({reason})", retry)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """
    Seconds to wait from a ``Retry-After`` header in either of its forms (delta-seconds or HTTP-date).
    A header sent more than once reaches us joined by commas (``2, 1``): the longest of the delta-seconds.
    """
    if not value:
        return None
    value = value.strip()
    try:
        return _seconds(float(value))
    except ValueError:
        pass
    if "," in value:  # repeated delta-seconds headers (an HTTP-date's comma follows its day name: no number)
        try:
            waits = [_seconds(float(part)) for part in value.split(",") if part.strip()]
        except ValueError:
            pass
        else:
            known = [wait for wait in waits if wait is not None]
            return max(known) if known else None
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
    except OverflowError:  # an integer too large for a float (a 400-digit holdUntil): a wait past any cap
        return math.inf if int(value) > 0 else None
    except (TypeError, ValueError):
        try:
            when = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        when = when if when.tzinfo else when.replace(tzinfo=UTC)
        return max(0.0, when.timestamp() - current)
    if number != number or number < 0:  # NaN, or a negative count: not a time at all
        return None
    if math.isinf(number):
        return number
    if number > 1e12:  # Unix milliseconds
        number = number / 1000 - current
    elif number > 1e9:  # Unix seconds
        number -= current
    return max(0.0, number)


def _seconds(number: float) -> float | None:
    """A delta-seconds value: ``inf`` stays (a wait past any cap), NaN and negatives mean nothing."""
    if number != number or number < 0:
        return None
    return number


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


# --------------------------------------------------------------------------------------------------------
# tenacity: one Retrying per hook, the per-call settings travel in the call object
# --------------------------------------------------------------------------------------------------------
class Call:
    """
    One logical call: what to send, and the per-call settings the policy reads (``max_retries``,
    ``max_wait``, ``on_lost_answer``). It is the attempt function's only argument, so tenacity's callbacks
    find it in ``retry_state.args[0]``: the :class:`tenacity.Retrying` is built once per hook, not per call.
    """

    __slots__ = (
        "headers",
        "held",
        "hook",
        "idempotent",
        "json_body",
        "max_retries",
        "max_wait",
        "method",
        "on_lost_answer",
        "params",
        "pause",
        "paused_at",
        "read_timeout",
        "url",
        "waited",
        "where",
    )

    def __init__(self, hook: Any, method: str, url: str, where: dict[str, Any], **settings: Any) -> None:
        self.hook = hook
        self.method = method
        self.url = url
        self.where = where
        self.params = settings["params"]
        self.json_body = settings["json_body"]
        self.headers = settings["headers"]
        self.idempotent = settings["idempotent"]
        self.read_timeout = settings["read_timeout"]
        self.max_retries = settings["max_retries"]
        self.max_wait = settings["max_wait"]
        self.on_lost_answer = settings["on_lost_answer"]
        self.pause = 0.0
        self.paused_at = 0
        self.waited = 0.0  # the policy's own sleeps between attempts so far
        self.held = 0.0  # and the time its retries were held by the connection's limiter (another's pause)

    def hold_budget(self) -> float:
        """
        How long the connection's limiter may still hold this call's next attempt: unbounded for the first
        (the rate limit's queue), then what is left of ``max_wait`` for every wait between attempts.
        """
        if self.paused_at == 0:
            return math.inf
        return max(0.0, self.max_wait - self.waited - self.held)

    def held_past_budget(self, held: float) -> LinkMsgRateLimitedError:
        """The error of a retry the connection's pause would hold past the call's ``max_wait``."""
        return LinkMsgRateLimitedError(
            f"gave up after {self.paused_at} attempt(s): the connection is paused (another call's 429) for "
            f"{held:.1f} s more, past what is left of the max_retry_wait of {self.max_wait:.0f} s "
            f"({self.waited + self.held:.1f} s already spent waiting between retries)",
            **self.where,
        )


def run_attempt(call: Call) -> Any:
    """
    One attempt. Failures are *returned*, not raised, with their tracebacks cut: a raised exception
    kept in tenacity's ``Future`` would reference the frame that holds the retry state (a reference cycle
    per failed call, left for the garbage collector).
    """
    try:
        return call.hook.send_attempt(call)
    except (Transient, LinkMsgError) as exc:
        if call.on_lost_answer is not None and getattr(exc, "answer_lost", False):
            call.on_lost_answer()  # may raise to stop the retries
        return _detached(exc)


def _detached(exc: BaseException) -> BaseException:
    seen = exc
    while seen is not None:
        seen.__traceback__ = None
        seen = seen.__cause__ or seen.__context__
    return exc


def _is_transient(result: Any) -> bool:
    return isinstance(result, Transient)


def _pause(retry_state: Any) -> float:
    """The pause after this attempt, drawn once (tenacity asks ``wait`` and ``stop``, in either order)."""
    call: Call = retry_state.args[0]
    if call.paused_at != retry_state.attempt_number:
        call.paused_at = retry_state.attempt_number
        call.pause = backoff(retry_state.outcome.result(), retry_state.attempt_number)
    return call.pause


def _stop(retry_state: Any) -> bool:
    call: Call = retry_state.args[0]
    pause = _pause(retry_state)
    spent = retry_state.idle_for + call.held  # sleeps, and time held by the connection's pauses
    return retry_state.attempt_number > call.max_retries or spent + pause > call.max_wait


def _wait(retry_state: Any) -> float:
    return _pause(retry_state)


def _before_sleep(retry_state: Any) -> None:
    call: Call = retry_state.args[0]
    exc: Transient = retry_state.outcome.result()
    call.waited = retry_state.idle_for  # tenacity counted the coming sleep in already
    call.hook.count_retry()
    call.hook.log.warning(
        "%s: %s; retry %d in %.1f s", call.hook.vendor, exc.reason, retry_state.attempt_number, call.pause
    )


def _give_up(retry_state: Any) -> LinkMsgError:
    call: Call = retry_state.args[0]
    return gave_up(
        retry_state.outcome.result(),
        retry_state.attempt_number,
        retry_state.idle_for + call.held,
        retry_state.seconds_since_start,
        call.max_wait,
    )


def build_retrying(sleep: Callable[[float], None] | None = None) -> tenacity.Retrying:
    """
    The :class:`tenacity.Retrying` of one hook: reused by every call (and thread: its state is
    thread-local), so a call builds no retry machinery of its own.
    """
    return tenacity.Retrying(
        retry=tenacity.retry_if_result(_is_transient),
        stop=_stop,
        wait=_wait,
        before_sleep=_before_sleep,
        retry_error_callback=_give_up,
        sleep=sleep or tenacity.nap.sleep,
    )


async def arun_attempt(call: Call) -> Any:
    """The async twin of :func:`run_attempt`."""
    try:
        return await call.hook.asend_attempt(call)
    except (Transient, LinkMsgError) as exc:
        if call.on_lost_answer is not None and getattr(exc, "answer_lost", False):
            call.on_lost_answer()
        return _detached(exc)


def build_async_retrying() -> tenacity.AsyncRetrying:
    """The hook's :class:`tenacity.AsyncRetrying`: the same policy, sleeping on the event loop."""
    import asyncio

    return tenacity.AsyncRetrying(
        retry=tenacity.retry_if_result(_is_transient),
        stop=_stop,
        wait=_wait,
        before_sleep=_before_sleep,
        retry_error_callback=_give_up,
        sleep=asyncio.sleep,
    )
