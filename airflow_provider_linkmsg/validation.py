"""
One validation layer for operator arguments, applied after rendering and before any call.

Every check takes the value as the operator holds it after Jinja rendering (so a number or a boolean may
arrive as text), returns it in its proper type, or raises :class:`LinkMsgValidationError` naming the field
and the fix. Patterns match the whole string (``fullmatch``: a rendered Variable's trailing newline is not
an id), numbers are finite and in range (``NaN``, ``inf`` and ``1e300`` are refused), booleans are real
booleans or the words ``true``/``false``, lists are lists.

One rule for numbers from templated strings, everywhere: decimal text is read as the number it writes
(``"50"`` is 50, ``" 2.5 "`` is 2.5), and blank text is refused, never taken for "unset" (``None`` is
unset). Ids and URLs are checked and sent in the same form: stripped before both, or refused.

:func:`parse_literal` is the one parser for a rendered literal (``"['a', 'b']"``, JSON text): JSON first,
then a Python literal (an XCom list rendered with ``repr``); text that is neither is a validation error
naming the field, never a ``SyntaxError``.

The ``check_*_arguments`` functions check all of one operator's arguments; operators call them at the top
of ``execute`` (or of ``check_inputs``), and keep the normalized values they return.
"""

from __future__ import annotations

import ast
import json
import math
import os
import re
from collections.abc import Collection, Mapping
from datetime import date
from typing import Any

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError

#: most seconds an inbox re-read may overlap its watermark (a week)
MAX_OVERLAP_SECONDS = 7 * 24 * 3600
#: most conversations an inbox task reads at once
MAX_WORKERS = 64
#: a Koneksi generation larger than this needs an explicit ``max_messages``
UNBUDGETED_MESSAGES = 1000
#: Parquet codecs pyarrow writes
PARQUET_CODECS = ("none", "snappy", "gzip", "brotli", "lz4", "zstd")
#: seconds: the longest poll interval or timeout an operator accepts (a week)
MAX_SECONDS = 7 * 24 * 3600

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_PROFILE_URL = re.compile(
    r"https?://([a-z]{2,3}\.)?(www\.)?linkedin\.com/(in|sales/people|sales/lead)/[^/?#\s]+/?(\?[^#\s]*)?",
    re.IGNORECASE,
)
_NO_SPACE_URL = re.compile(r"https?://[^\s/?#]+[^\s]*", re.IGNORECASE)


def _error(message: str, field: str, vendor: str | None) -> LinkMsgValidationError:
    return LinkMsgValidationError(message, field=field, vendor=vendor)


# ---- literals -----------------------------------------------------------------------------------------
def parse_literal(value: Any, *, field: str, vendor: str | None = None) -> Any:
    """
    ``value`` parsed when it is text holding a list or dict (JSON, or a Python literal as ``repr`` renders
    an XCom); any other value is returned as it is.

    :raises LinkMsgValidationError: text that starts like a list or dict but is neither JSON nor a literal.
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text[:1] not in ("[", "{"):
        return value
    try:
        try:
            return json.loads(text)
        except ValueError:
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        raise _error(
            f"{field} is text that looks like a list or dict but is neither JSON nor a Python literal "
            f"({type(exc).__name__}: {exc}); give a list (e.g. an upstream XCom with render_template_as_"
            f"native_obj=True) or valid JSON: {text[:80]!r}",
            field,
            vendor,
        ) from None


# ---- scalars --------------------------------------------------------------------------------------------
def check_pattern(
    value: Any, pattern: re.Pattern[str], *, field: str, expected: str, vendor: str | None = None
) -> str:
    """``value`` if the whole string matches ``pattern`` (no trailing newline slips through)."""
    if isinstance(value, str) and pattern.fullmatch(value):
        return value
    raise _error(f"{field} {value!r} is not {expected}", field, vendor)


def check_number(
    value: Any,
    *,
    field: str,
    minimum: float | None = None,
    maximum: float | None = None,
    integer: bool = False,
    exclusive_minimum: bool = False,
    vendor: str | None = None,
) -> float | int:
    """
    ``value`` as a finite number in range (text such as ``"5"`` is read: templated fields render to text).

    :param integer: a whole number is required (``2.5`` and ``True`` are refused; ``"50"`` becomes 50).
    :param exclusive_minimum: the number must be greater than ``minimum``.
    """
    kind = "a whole number" if integer else "a number"
    bounds = []
    if minimum is not None:
        bounds.append(f"{'greater than' if exclusive_minimum else 'at least'} {minimum:g}")
    if maximum is not None:
        bounds.append(f"at most {maximum:g}")
    wanted = f"{field} must be {kind}" + (f" {' and '.join(bounds)}" if bounds else "")
    number: Any = value
    if isinstance(value, str):
        text = value.strip()
        try:
            number = int(text) if re.fullmatch(r"[+-]?\d+", text) else float(text)
        except ValueError:
            raise _error(f"{wanted}, got {value!r}", field, vendor) from None
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise _error(f"{wanted}, got {value!r}", field, vendor)
    if isinstance(number, float) and not math.isfinite(number):
        raise _error(f"{wanted}, got {value!r} (not a finite number)", field, vendor)
    if integer:
        if isinstance(number, float) and not number.is_integer():
            raise _error(f"{wanted}, got {value!r}", field, vendor)
        number = int(number)
    low_fails = minimum is not None and (number <= minimum if exclusive_minimum else number < minimum)
    if low_fails or (maximum is not None and number > maximum):
        raise _error(f"{wanted}, got {value!r}", field, vendor)
    return number


def check_optional_number(value: Any, **kwargs: Any) -> float | int | None:
    """:func:`check_number`, with ``None`` meaning no value (blank text is refused: it is no number)."""
    if value is None:
        return None
    return check_number(value, **kwargs)


def check_bool(value: Any, *, field: str, vendor: str | None = None) -> bool:
    """A real boolean, or the text ``true``/``false`` (any case) a template renders; nothing else."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise _error(f"{field} must be true or false, got {value!r}", field, vendor)


def check_bools(operator: Any, *names: str, vendor: str | None = None) -> None:
    """Every boolean argument ``names`` of ``operator`` through :func:`check_bool`, normalized in place."""
    for name in names:
        setattr(operator, name, check_bool(getattr(operator, name), field=name, vendor=vendor))


def check_choice(value: Any, choices: Collection[str], *, field: str, vendor: str | None = None) -> str:
    """``value`` if it is one of ``choices``."""
    if isinstance(value, str) and value in choices:
        return value
    raise _error(f"{field} must be one of {', '.join(map(repr, choices))}, got {value!r}", field, vendor)


def check_iso_date(value: Any, *, field: str, vendor: str | None = None) -> str | None:
    """``value`` if it is a calendar date written ``YYYY-MM-DD`` (``None`` passes)."""
    if value is None:
        return None
    text = str(value)
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError(text)
        date.fromisoformat(text)
    except ValueError:
        raise _error(
            f"{field} {value!r} is not a date: give YYYY-MM-DD, e.g. '{{{{ ds }}}}'", field, vendor
        ) from None
    return text


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")


def check_destination(value: Any, *, field: str = "destination") -> Any:
    """
    A destination that cannot land in the worker's working directory: an absolute local path or a URL
    with a scheme (``s3://bucket/prefix``, ``file:///data``), returned stripped; an ``ObjectStoragePath``
    or other path object as it is (local ones must be absolute). Empty, ``.``, ``..`` and relative paths
    are refused: they resolve against wherever the worker happens to run.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        raise _error(
            f"{field} is empty: give an absolute path or a URL such as s3://bucket/prefix", field, None
        )
    if not isinstance(value, str):
        protocol = getattr(value, "protocol", None)
        if protocol in (None, "file", "local") and not os.path.isabs(str(value).removeprefix("file://")):
            raise _error(f"{field} {str(value)!r} is a relative path: give an absolute one", field, None)
        return value
    text = value.strip()
    if _SCHEME.fullmatch(text) or os.path.isabs(text):
        return text
    raise _error(
        f"{field} {value!r} is a relative path: it would resolve against the worker's working directory; "
        "give an absolute path (/data/linkmsg) or a URL such as s3://bucket/prefix",
        field,
        None,
    )


def check_list(value: Any, *, field: str, non_empty: bool = False, vendor: str | None = None) -> list[Any]:
    """``value`` as a list (a rendered literal is parsed); refused when empty and ``non_empty``."""
    value = parse_literal(value, field=field, vendor=vendor)
    if isinstance(value, str | bytes | Mapping) or not isinstance(value, list | tuple):
        raise _error(f"{field} must be a list, got {type(value).__name__}: {value!r:.80}", field, vendor)
    if non_empty and not value:
        raise _error(
            f"{field} is an empty list: it would make paid calls that read nothing; leave it unset (None) "
            "for all, or name at least one",
            field,
            vendor,
        )
    return list(value)


def check_profile_url(value: Any, *, field: str, vendor: str | None = None) -> str:
    """``value`` if it is a LinkedIn profile URL (``https://www.linkedin.com/in/<slug>``)."""
    if isinstance(value, str) and _PROFILE_URL.fullmatch(value.strip()):
        return value.strip()
    raise _error(
        f"{field} {value!r} is not a LinkedIn profile URL; expected https://www.linkedin.com/in/<slug>",
        field,
        vendor,
    )


# ---- per operator --------------------------------------------------------------------------------------
def check_inbox_arguments(operator: Any) -> None:
    """
    The shared arguments of an inbox retrieve operator, normalized in place: ``full_refresh``,
    ``include_raw``, ``fail_on_error`` (booleans), ``overlap_seconds``, ``max_workers``, ``page_size`` and
    ``conversation_ids`` (not an empty list).
    """
    vendor = getattr(operator, "vendor", None)
    for name in ("full_refresh", "include_raw", "fail_on_error"):
        setattr(operator, name, check_bool(getattr(operator, name), field=name, vendor=vendor))
    operator.overlap_seconds = check_number(
        operator.overlap_seconds,
        field="overlap_seconds",
        minimum=0,
        maximum=MAX_OVERLAP_SECONDS,
        vendor=vendor,
    )
    operator.max_workers = check_number(
        operator.max_workers, field="max_workers", minimum=1, maximum=MAX_WORKERS, integer=True, vendor=vendor
    )
    if operator.page_size is not None:  # bounds are the vendor's: its hook checks them
        operator.page_size = check_number(operator.page_size, field="page_size", integer=True, vendor=vendor)
    if operator.conversation_ids is not None and not isinstance(operator.conversation_ids, str):
        check_list(operator.conversation_ids, field="conversation_ids", non_empty=True, vendor=vendor)


def check_max_credits(value: Any, *, vendor: str | None = None) -> float | None:
    """``max_credits`` as a finite number of credits, 0 or more, or ``None`` (no limit)."""
    if isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
        raise _error(
            f"max_credits must be a number of credits, 0 or more (None: no limit), got {value!r}",
            "max_credits",
            vendor,
        )
    try:
        number = check_optional_number(value, field="max_credits", minimum=0, vendor=vendor)
    except LinkMsgValidationError as exc:
        raise _error(
            f"max_credits must be a number of credits, 0 or more (None: no limit), got {value!r}",
            "max_credits",
            vendor,
        ) from exc
    return None if number is None else float(number)


def check_seconds(value: Any, *, field: str, vendor: str | None = None) -> float:
    """A duration in seconds: finite, greater than 0, at most a week."""
    return float(
        check_number(
            value, field=field, minimum=0, exclusive_minimum=True, maximum=MAX_SECONDS, vendor=vendor
        )
    )


def check_persons(value: Any, *, field: str = "persons") -> list[Any]:
    """A Linked API person list: a non-empty list whose items are URLs or ``{"person": ...}`` dicts."""
    persons = check_list(value, field=field, vendor="linkedapi")
    for i, item in enumerate(persons):
        if not isinstance(item, str | Mapping):
            raise _error(
                f"{field}[{i}] is {item!r}: each person is a LinkedIn URL or a {{'person': URL, 'channel': ...}} "
                "dict",
                f"{field}[{i}]",
                "linkedapi",
            )
    return persons


def _id_or_url(name: str) -> bool:
    return name == "linkedin" or name.endswith(("_id", "_url", "_link"))


def strip_ids_and_urls(payload: dict[str, Any]) -> None:
    """
    Strip, in place, the text ids and URLs of a Koneksi request (top-level fields and each lead's): the
    checks and the request then see the same value (a rendered Variable's trailing newline is not sent).
    Leads are copied, not changed under the caller.
    """
    for name, value in list(payload.items()):
        if isinstance(value, str) and _id_or_url(name):
            payload[name] = value.strip()
    leads = payload.get("lead_data")
    if isinstance(leads, list):
        payload["lead_data"] = [
            {k: v.strip() if isinstance(v, str) and _id_or_url(k) else v for k, v in lead.items()}
            if isinstance(lead, Mapping)
            else lead
            for lead in leads
        ]


def check_generation_request(payload: dict[str, Any], max_messages: Any) -> int | None:
    """
    What the Koneksi vendor rules do not catch, before the paid generation (ids and URLs are stripped in
    ``payload`` first, see :func:`strip_ids_and_urls`): lead fields of the wrong type,
    LinkedIn URLs that are not profiles, company URLs with spaces, lead ids that repeat across types, and
    ``max_messages`` that is not a whole number; a generation of more than :data:`UNBUDGETED_MESSAGES`
    messages without ``max_messages``. Returns ``max_messages`` as an int (``None``: no limit).
    """
    vendor = "koneksi"
    strip_ids_and_urls(payload)
    if isinstance(max_messages, bool | float):
        raise _error(
            f"max_messages must be a whole number of messages, got {max_messages!r}", "max_messages", vendor
        )
    limit = check_optional_number(max_messages, field="max_messages", minimum=0, integer=True, vendor=vendor)
    for name in ("proposition_company_url", "material_link", "completion_notification_url"):
        url = payload.get(name)
        if isinstance(url, str) and url.strip() and not _NO_SPACE_URL.fullmatch(url.strip()):
            raise _error(f"{name} {url!r} is not a URL: it holds a space or no host", name, vendor)
    leads = payload.get("lead_data")
    if not isinstance(leads, list):
        return limit
    seen: dict[str, int] = {}
    types: set[type] = set()
    for i, lead in enumerate(leads):
        if not isinstance(lead, Mapping):
            raise _error(f"lead_data[{i}] must be an object, got {lead!r:.80}", f"lead_data[{i}]", vendor)
        for key in ("first_name", "last_name", "lead_company", "title"):
            if key in lead and lead[key] is not None and not isinstance(lead[key], str):
                raise _error(
                    f"lead_data[{i}].{key} must be text, got {type(lead[key]).__name__}",
                    f"lead_data[{i}].{key}",
                    vendor,
                )
        if lead.get("linkedin") not in (None, ""):
            check_profile_url(lead["linkedin"], field=f"lead_data[{i}].linkedin", vendor=vendor)
        lead_id = lead.get("external_prospect_id")
        if lead_id is None:
            continue
        if isinstance(lead_id, bool) or not isinstance(lead_id, str | int):
            raise _error(
                f"lead_data[{i}].external_prospect_id must be text or a whole number, got {lead_id!r}",
                f"lead_data[{i}].external_prospect_id",
                vendor,
            )
        types.add(type(lead_id))
        if len(types) > 1:
            raise _error(
                f"lead_data[{i}].external_prospect_id {lead_id!r} is a {type(lead_id).__name__} where earlier "
                "ids are not: give every id in one type (all text, or all numbers), as the records key on it",
                f"lead_data[{i}].external_prospect_id",
                vendor,
            )
        key = str(lead_id).strip()
        if key in seen:
            raise _error(
                f"lead_data[{i}].external_prospect_id {lead_id!r} duplicates lead_data[{seen[key]}]",
                f"lead_data[{i}].external_prospect_id",
                vendor,
            )
        seen[key] = i
    sequence = payload.get("message_sequence")
    messages = len(leads) * (len(sequence) if isinstance(sequence, list) else 0)
    if limit is None and messages > UNBUDGETED_MESSAGES:
        raise _error(
            f"the generation would create {messages} messages and no max_messages is set; set max_messages "
            f"(a generation above {UNBUDGETED_MESSAGES} messages needs one) or split the leads",
            "max_messages",
            vendor,
        )
    return limit


def check_export_arguments(operator: Any, *, files: bool) -> None:
    """The export operators' arguments, normalized in place, before any manifest is read."""
    if files:
        operator.destination = check_destination(operator.destination)
        if operator.file_format == "parquet" and operator.compression is not None:
            operator.compression = check_choice(
                str(operator.compression).lower(), PARQUET_CODECS, field="compression"
            )
        check_iso_date(operator.partition_date, field="partition_date")
    operator.batch_size = check_number(operator.batch_size, field="batch_size", minimum=1, integer=True)
    check_bools(operator, "include_raw", *(() if files else ("create_table",)))


class MissingManifestError(LinkMsgValidationError, FileNotFoundError):
    """``manifests`` names a path without a staging manifest (still a ``FileNotFoundError`` for callers)."""


def load_manifest(path: Any, conn_id: str | None = None) -> Any:
    """The staging manifest at ``path``; a missing one is a validation error naming ``manifests``."""
    from airflow_provider_linkmsg.io.staging import Manifest

    try:
        return Manifest.load(path, conn_id)
    except FileNotFoundError as exc:
        raise MissingManifestError(
            f"manifests names {path!r}, where there is no staging manifest ({exc}); give the manifest path "
            "or the XCom value of a staging task that completed",
            field="manifests",
        ) from None
