"""
The sandbox's admin API under ``/_sandbox``, and the checks of everything it is given.

* ``GET /_sandbox/truth/{vendor}``: the vendor's ground truth as JSON.
* ``GET /_sandbox/stats``: calls per route, faults served, 429s from rate limits, credits spent.
* ``POST /_sandbox/stats/reset``: zero the counters.
* ``POST /_sandbox/advance``: time passes and new messages arrive, e.g. ``{"seconds": 60, "linkup":
  {"conversations": 2, "messages": 1}}`` (a vendor's part is an object; without one, the top level is
  forwarded to every vendor).
* ``PUT /_sandbox/faults``: ``{"rules": [...], "seed": n}`` (see :class:`FaultRule`); ``{"rules": []}``
  clears them. A body that is not such an object (``[]``, ``null``) is refused, never read as "clear".
  ``GET`` shows the rules with their counters.
* ``PUT /_sandbox/config``: ``{"rate_limits": {"connectsafely": [60, 60]}, "vendors": {"linkup":
  {"max_count": 50}}}``.

Every part of a request is checked before anything changes (400 with the reason): a vendor setting of the
wrong type (:data:`SETTINGS`), a fault rule with counters (``served``, ``seen``: the sandbox's, not input)
or a non-ASCII field path, an ``advance`` part that is not an object of counts. So a bad call never leaves
the sandbox half-changed, or answering 500. A vendor module that reads a new setting or ``advance`` key
declares it here (:data:`SETTINGS`, :data:`ADVANCE`); an undeclared one is a 400 naming the known keys.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.sandbox.faults import FaultRule, WindowLimiter, number

if TYPE_CHECKING:
    from airflow_provider_linkmsg.sandbox.core import Request, Response, Sandbox

_COUNT, _NUMBER, _TEXT, _BOOL, _OBJECT, _LIST, _ANY = (
    "count",
    "number",
    "text",
    "bool",
    "object",
    "list",
    "any",
)
#: the vendor settings ``PUT /_sandbox/config`` takes, by kind; ``?`` after the kind: ``null`` allowed
SETTINGS: dict[str, str] = {
    **dict.fromkeys(
        ("accounts", "conversations", "leads", "max_count", "messages", "max_items_per_request", "sync_days"),
        _COUNT,
    ),
    "polls_until_complete": _COUNT + "?",
    "fail_status": _COUNT,
    **dict.fromkeys(
        (
            "attachments",
            "failure_share",
            "sales_nav",
            "seconds_per_message",
            "webhook_timeout",
            "get_seconds",
            "long_poll_max_seconds",
            "pending_seconds",
            "sync_seconds",
        ),
        _NUMBER,
    ),
    "sync_latency_ms": _NUMBER + "?",
    "credits": _NUMBER + "?",
    **dict.fromkeys(
        ("api_key", "get_messages_api_key", "other_api_key", "identification_token", "outside_working_hours"),
        _TEXT,
    ),
    **dict.fromkeys(("webhook_secret", "expired_api_key"), _TEXT + "?"),
    **dict.fromkeys(("accept_stage_ambition", "since_inclusive"), _BOOL + "?"),
    **dict.fromkeys(("pagination", "fail_leads"), _OBJECT + "?"),
    **dict.fromkeys(
        ("extra_message_types", "rate_limit_fields", "revoked_keys", "webhook_retry_delays"), _LIST
    ),
    **dict.fromkeys(
        ("fail_conversations", "inactive_accounts", "unknown_conversation", "rate_limit"), _LIST + "?"
    ),
    **dict.fromkeys(("account_error", "fail_workflows"), _ANY),
}
#: the inbox vendors' pagination quirks (:func:`airflow_provider_linkmsg.sandbox.inbox_world.page_cursor`)
PAGINATION = {
    "page_cap": _COUNT,
    **dict.fromkeys(("null_cursor", "cursor_on_last_page", "empty_tail", "repeat_cursor", "cut_ties"), _BOOL),
}
#: what an ``advance`` part may hold, by kind (choices for text)
ADVANCE: dict[str, Any] = {
    **dict.fromkeys(("conversations", "messages", "persons", "empty_conversations"), _COUNT),
    "older_by_ms": _NUMBER,
    "newer_by_ms": _NUMBER + "?",
    "conversation_ids": _LIST,
    "account_id": _TEXT,
    "at": ("newer", "equal", "older"),
    "working_hours": ("open", "closed"),
    "move_activity": _BOOL,
}
#: the most new items one ``advance`` may ask for, per count
MAX_ADVANCE_COUNT = 1_000_000


def check_value(value: Any, kind: Any, what: str) -> None:
    """Raise ``ValueError`` naming ``what`` unless ``value`` is of ``kind`` (see :data:`SETTINGS`)."""
    if isinstance(kind, tuple):
        if value not in kind:
            raise ValueError(f"{what} must be one of {', '.join(kind)}, got {value!r}")
        return
    if kind.endswith("?"):
        if value is None:
            return
        kind = kind[:-1]
    if kind == _COUNT:
        number(value, what, 0, MAX_ADVANCE_COUNT, integer=True)
    elif kind == _NUMBER:
        number(value, what, 0, math.inf)
    elif kind == _TEXT and not isinstance(value, str):
        raise ValueError(f"{what} must be text, got {value!r}")
    elif kind == _BOOL and not isinstance(value, bool):
        raise ValueError(f"{what} must be true or false, got {value!r}")
    elif kind == _OBJECT and not isinstance(value, Mapping):
        raise ValueError(f"{what} must be an object, got {value!r}")
    elif kind == _LIST and not isinstance(value, list):
        raise ValueError(f"{what} must be a list, got {value!r}")


def check_settings(vendor: str, settings: Any) -> None:
    """A vendor's ``PUT /_sandbox/config`` settings: known keys, each of its kind."""
    if not isinstance(settings, Mapping):
        raise ValueError(f"vendors.{vendor} must be an object of settings, got {settings!r}")
    for key, value in settings.items():
        if key not in SETTINGS:
            raise ValueError(f"vendors.{vendor}.{key} is not a sandbox setting; known: {sorted(SETTINGS)}")
        check_value(value, SETTINGS[key], f"vendors.{vendor}.{key}")
    quirks = settings.get("pagination") or {}
    for key, value in quirks.items():
        if key not in PAGINATION:
            raise ValueError(f"vendors.{vendor}.pagination.{key} is not a quirk; known: {sorted(PAGINATION)}")
        check_value(value, PAGINATION[key], f"vendors.{vendor}.pagination.{key}")
    limit = settings.get("rate_limit")
    if limit is not None:
        check_rate_limit(limit, f"vendors.{vendor}.rate_limit")


def check_rate_limit(limit: Any, what: str) -> None:
    if not (isinstance(limit, list | tuple) and len(limit) == 2):
        raise ValueError(f"{what} must be [requests, seconds] or null, got {limit!r}")
    number(limit[0], f"{what} requests", 1, 1_000_000, integer=True)
    number(limit[1], f"{what} seconds", 0.001, 86_400)


def check_advance(body: Any, vendors: Mapping[str, Any], max_seconds: float) -> float:
    """An ``advance`` body, every vendor part of it; returns the seconds."""
    if not isinstance(body, Mapping):
        raise ValueError('advance takes an object, e.g. {"seconds": 60}')
    seconds = number(body.get("seconds", 0), "advance seconds", 0, max_seconds)
    parts = {"(top level)": {k: v for k, v in body.items() if k != "seconds" and k not in vendors}}
    parts.update({name: body[name] for name in vendors if name in body})
    for name, part in parts.items():
        if not isinstance(part, Mapping):
            raise ValueError(f"advance.{name} must be an object such as {{'conversations': 2}}, got {part!r}")
        for key, value in part.items():
            if key not in ADVANCE:
                raise ValueError(f"advance.{name}.{key} is not known; known: {sorted(ADVANCE)}")
            check_value(value, ADVANCE[key], f"advance.{name}.{key}")
    return float(seconds)


def parse_fault_rules(body: Any) -> tuple[list[FaultRule], int | None]:
    """A ``PUT /_sandbox/faults`` body: every rule checked (counters refused) before any applies."""
    if not isinstance(body, Mapping):
        raise ValueError('faults take an object: {"rules": [...]} ({"rules": []} clears them)')
    unknown = set(body) - {"rules", "seed"}
    if unknown or "rules" not in body:
        raise ValueError(f'faults take {{"rules": [...], "seed": n}}; got keys {sorted(body)}')
    rules, seed = body["rules"], body.get("seed")
    if not isinstance(rules, list) or not all(isinstance(r, Mapping) for r in rules):
        raise ValueError("rules must be a list of fault rule objects")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ValueError(f"seed must be a whole number, got {seed!r}")
    for i, rule in enumerate(rules):
        counters = {"served", "seen"} & set(rule)
        if counters:
            raise ValueError(f"rules[{i}]: {sorted(counters)} are the sandbox's counters, not input")
    return [FaultRule(**rule) for rule in rules], seed


def configure(sandbox: Sandbox, body: Any) -> None:
    """Apply ``PUT /_sandbox/config``; everything is checked first (``ValueError``), so none applies half-way."""
    if not isinstance(body, Mapping):
        raise ValueError(f"config must be an object, got {type(body).__name__}")
    unknown = set(body) - {"rate_limits", "vendors"}
    if unknown:
        raise ValueError(f"unknown config keys {sorted(unknown)}: use 'rate_limits' and 'vendors'")
    limits, vendors = body.get("rate_limits") or {}, body.get("vendors") or {}
    if not isinstance(limits, Mapping) or not isinstance(vendors, Mapping):
        raise ValueError("rate_limits and vendors must be objects keyed by vendor")
    for vendor in (*limits, *vendors):
        if vendor not in sandbox.apps:
            raise ValueError(f"unknown vendor {vendor!r}; known: {sorted(sandbox.apps)}")
    for vendor, limit in limits.items():
        if limit:
            check_rate_limit(limit, f"rate_limits.{vendor}")
    for vendor, settings in vendors.items():
        check_settings(vendor, settings)
    for vendor, limit in limits.items():
        if limit:
            sandbox.state.rate_limits[vendor] = WindowLimiter(int(limit[0]), float(limit[1]))
        else:
            sandbox.state.rate_limits.pop(vendor, None)
    for vendor, settings in vendors.items():
        with sandbox.apps[vendor].lock:
            sandbox.apps[vendor].configure(settings)


def handle(sandbox: Sandbox, request: Request) -> Response:
    """Answer one ``/_sandbox`` request: 200, 400 with the reason, or 404."""
    from airflow_provider_linkmsg.sandbox.core import BadJson, reply

    path, method = request.path, request.method
    try:
        if method == "GET" and path.startswith("/_sandbox/truth/"):
            vendor = path.rsplit("/", 1)[1]
            if vendor not in sandbox.apps:
                return reply(404, {"error": f"unknown vendor {vendor!r}; known: {sorted(sandbox.apps)}"})
            return reply(200, sandbox.truth(vendor))
        if method == "GET" and path == "/_sandbox/stats":
            return reply(200, sandbox.stats())
        if method == "POST" and path == "/_sandbox/stats/reset":
            sandbox.reset_stats()
            return reply(200, {"reset": True})
        if method == "POST" and path == "/_sandbox/advance":
            body = request.json()
            if not isinstance(body, Mapping):
                raise ValueError('advance takes an object, e.g. {"seconds": 60}')
            return reply(200, sandbox.advance(**body))
        if method == "PUT" and path == "/_sandbox/faults":
            rules, seed = parse_fault_rules(request.json())
            sandbox.set_faults(rules, seed)
            return reply(200, {"rules": len(sandbox.state.faults)})
        if method == "GET" and path == "/_sandbox/faults":
            return reply(
                200, {"seed": sandbox.state.fault_seed, "rules": [asdict(r) for r in sandbox.state.faults]}
            )
        if method == "PUT" and path == "/_sandbox/config":
            configure(sandbox, request.json())
            return reply(200, {"ok": True})
        if method == "GET" and path == "/_sandbox/connections":
            return reply(200, sandbox.connections())
    except (BadJson, TypeError, ValueError, KeyError) as exc:
        return reply(400, {"error": f"bad admin request: {exc}"})
    return reply(404, {"error": f"no admin route {method} {path}"})
