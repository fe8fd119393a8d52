"""
Field types shared by the response schemas: strict scalars and plausible timestamps.

The timestamp rule: a vendor timestamp is epoch milliseconds (a number, or digits as text) or an
ISO-8601 string with a date. It must fall between :data:`EARLIEST` (LinkedIn's launch, 2003-05-05 UTC)
and one day (:data:`FUTURE_SLACK`) after the current time. A number that is before :data:`EARLIEST` as
milliseconds but in range as seconds is refused as *seconds sent for milliseconds* (it would otherwise be
staged as a date in January 1970); one past the upper bound is refused as *in the far future*. Refused,
not guessed: a vendor that changes units must not move watermarks by a factor of a thousand.
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, ConfigDict, StrictBool, StrictInt, StrictStr
from pydantic import BaseModel as _BaseModel

#: the earliest plausible timestamp: LinkedIn's launch
EARLIEST = datetime(2003, 5, 5, tzinfo=UTC)
#: how far after now a timestamp may be (clock skew between the vendor and us)
FUTURE_SLACK = timedelta(days=1)
#: :data:`EARLIEST` in epoch milliseconds (exact: a whole second)
_EARLIEST_MS = int(EARLIEST.timestamp()) * 1000


class Loose(_BaseModel):
    """A vendor object: the declared fields are checked, the others kept (vendors add fields)."""

    model_config = ConfigDict(extra="allow", strict=True)


def _check_range(moment: datetime, value: Any, *, as_ms: float | None = None) -> None:
    latest = datetime.now(UTC) + FUTURE_SLACK
    if moment < EARLIEST:
        if as_ms is not None and EARLIEST.timestamp() <= as_ms <= latest.timestamp():
            raise ValueError(f"{value!r} looks like epoch seconds where epoch milliseconds are documented")
        raise ValueError(f"{value!r} is before {EARLIEST:%Y-%m-%d}: not a plausible message time")
    if moment > latest:
        raise ValueError(f"{value!r} is in the far future (after {latest:%Y-%m-%d}): not a plausible time")


def _timestamp(value: Any) -> Any:
    """The timestamp rule; epoch ms as an int between :data:`EARLIEST` and now is taken at once."""
    if type(value) is int and _EARLIEST_MS <= value <= time.time() * 1000:
        return value  # in range whatever the clock does next: what _checked_timestamp returns for it
    return _checked_timestamp(value)


def _checked_timestamp(value: Any) -> Any:
    """The timestamp rule, every form (see the module docstring): ``value`` or a ValueError saying why."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"a timestamp is epoch milliseconds or ISO-8601 text, not {type(value).__name__}")
    text = value.strip() if isinstance(value, str) else None
    if text is not None and not text.isdigit():
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            raise ValueError(f"{value!r} is neither epoch milliseconds nor an ISO-8601 time") from None
        if len(text) < 10 or "-" not in text:
            raise ValueError(f"{value!r} is not an ISO-8601 time with a date")
        _check_range(moment if moment.tzinfo else moment.replace(tzinfo=UTC), value)
        return value
    number = float(text if text is not None else value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite timestamp")
    if abs(number) > 1e15:
        raise ValueError(f"{value!r} is in the far future: not a plausible epoch-millisecond time")
    _check_range(datetime.fromtimestamp(number / 1000, tz=UTC), value, as_ms=number)
    return value


#: epoch milliseconds or ISO-8601, plausible (see the module docstring)
Timestamp = Annotated[Any, AfterValidator(_timestamp)]


def _non_empty(value: str) -> str:
    if not value.strip():
        raise ValueError("is empty")
    return value


def _amount(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"a number is required, not {type(value).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{value!r} is not a finite number of 0 or more")
    return value


def _count(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"a whole number of 0 or more is required, not {value!r}")
    return value


def unique_ids(items: list[Any] | None, key: str) -> list[Any] | None:
    """
    ``items`` if no two carry the same ``key`` (compared as text: ``7`` and ``"7"`` are one id), else a
    ValueError naming the id. For a list field's ``field_validator``: the error's path is the list's.
    """
    seen: set[str] = set()
    for item in items or ():
        value = getattr(item, key, None) if not isinstance(item, dict) else item.get(key)
        text = str(value)
        if text in seen:
            raise ValueError(f"{key} {text!r} appears twice in one answer (ids must be unique)")
        seen.add(text)
    return items


#: a non-empty id
Id = Annotated[StrictStr, AfterValidator(_non_empty)]
#: a count or amount: a real number (not text, not a boolean), finite and 0 or more
Amount = Annotated[Any, AfterValidator(_amount)]
#: a count: a whole number (not text, not a boolean), 0 or more
Count = Annotated[Any, AfterValidator(_count)]

__all__ = [
    "Amount",
    "Count",
    "Id",
    "Loose",
    "StrictBool",
    "StrictInt",
    "StrictStr",
    "Timestamp",
    "unique_ids",
]
