"""
Sandbox fault rules (probabilistic 429/5xx/reset/truncate/latency, and ``corrupt``), their checks, and the
per-key sliding-window rate limiter.
"""

from __future__ import annotations

import copy
import fnmatch
import math
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any


# --------------------------------------------------------------------------------------------------------
# Faults and rate limits
# --------------------------------------------------------------------------------------------------------
@dataclass
class FaultRule:
    """
    Faults injected on the routes matching ``vendor`` and ``route`` (fnmatch globs on ``"GET /path"``).

    Each request draws from a generator seeded by (seed, route, request number), so the same sequence of
    requests meets the same faults. ``times`` caps how many faults this rule serves (``None``: no cap);
    ``after`` lets that many matching requests through first.
    Reset and 5xx faults are served before the handler runs (the vendor did nothing); truncation cuts the
    handler's real answer short.

    ``kind="corrupt"`` rules change the handler's real JSON answer instead: the value at ``field`` (a
    dotted path, list indexes as numbers, ``*`` for every element; ``""`` for the whole body) becomes
    ``value``, or is removed when ``delete``. ``action`` narrows a rule to requests whose JSON body has that
    ``fresh`` makes a text ``value`` new on each answer (the rule's count is appended): a vendor that hands
    out a new cursor with every page of the same items.
    ``action`` (LinkupAPI's one endpoint). Corruptions ignore the ``p_*`` draws: each matching answer
    (within ``after`` and ``times``) is corrupted, and counted as a ``corrupt`` fault.
    """

    vendor: str = "*"
    route: str = "*"
    p_429: float = 0.0
    retry_after: str = "1"
    p_5xx: float = 0.0
    status_5xx: int = 503
    p_reset: float = 0.0
    p_truncate: float = 0.0
    latency_ms: float = 0.0
    p_latency: float = 1.0
    times: int | None = None
    after: int = 0
    kind: str | None = None
    field: str = ""
    value: Any = None
    delete: bool = False
    fresh: bool = False
    action: str = "*"
    served: int = 0
    seen: int = 0

    def __post_init__(self) -> None:
        for name in ("vendor", "route", "retry_after", "field", "action"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"fault rule {name} must be text, got {getattr(self, name)!r}")
        for name in ("p_429", "p_5xx", "p_reset", "p_truncate", "p_latency"):
            number(getattr(self, name), f"fault rule {name}", 0, 1)
        number(self.latency_ms, "fault rule latency_ms", 0, 600_000)
        number(self.status_5xx, "fault rule status_5xx", 500, 599, integer=True)
        number(self.after, "fault rule after", 0, None, integer=True)
        if self.times is not None:
            number(self.times, "fault rule times", 0, None, integer=True)
        if not self.field.isascii() or any(c.isspace() for c in self.field):
            raise ValueError(
                f"fault rule field must be an ASCII dotted path without spaces, got {self.field!r}"
            )
        if self.kind not in (None, "corrupt"):
            raise ValueError(f"fault rule kind must be 'corrupt' or absent, got {self.kind!r}")
        for name in ("delete", "fresh"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"fault rule {name} must be true or false, got {getattr(self, name)!r}")

    def matches(self, vendor: str, route: str) -> bool:
        return fnmatch.fnmatchcase(vendor, self.vendor) and fnmatch.fnmatchcase(route, self.route)


def number(value: Any, what: str, low: float, high: float | None, *, integer: bool = False) -> float:
    """``value`` if it is a finite number (a whole one when ``integer``) in ``[low, high]``, else ValueError."""
    kind = int if integer else (int, float)
    ok = not isinstance(value, bool) and isinstance(value, kind) and math.isfinite(value)
    if not ok or value < low or (high is not None and value > high):
        bounds = f"from {low:g}" + (f" to {high:g}" if high is not None else " up")
        raise ValueError(f"{what} must be a {'whole ' if integer else ''}number {bounds}, got {value!r}")
    return value


def corrupt(body: Any, path: str, value: Any = None, *, delete: bool = False) -> Any:
    """A copy of ``body`` with the value at the dotted ``path`` replaced by ``value`` (or removed)."""
    if path == "":
        return copy.deepcopy(value)
    body = copy.deepcopy(body)

    def walk(node: Any, parts: list[str]) -> None:
        head, rest = parts[0], parts[1:]
        if isinstance(node, list):
            keys: list[Any] = list(range(len(node))) if head == "*" else [int(head)] if head.isdigit() else []
            keys = [k for k in keys if k < len(node)]
        elif isinstance(node, dict):
            keys = list(node) if head == "*" else [head] if head in node or not rest else []
        else:
            keys = []
        for key in keys:
            if rest:
                walk(node[key], rest)
            elif delete:
                node.pop(key) if isinstance(node, dict) else None
            else:
                node[key] = copy.deepcopy(value)

    walk(body, path.split("."))
    return body


class WindowLimiter:
    """At most ``limit`` requests per ``window`` seconds per key (a sliding window)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit, self.window = limit, window
        self.hits: dict[str, deque[float]] = defaultdict(deque)
        self.lock = threading.Lock()

    def check(self, key: str) -> int:
        """Record a hit and return 0, or return the seconds to wait (the hit is not recorded)."""
        with self.lock:
            now = time.monotonic()
            hits = self.hits[key]
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return max(1, int(hits[0] + self.window - now + 0.999))
            hits.append(now)
            return 0
