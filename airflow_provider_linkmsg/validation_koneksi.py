"""
Koneksi / Upscale Outreach generation requests checked before the paid call (contract part 1, §1.8):
the vendor's 422 rules, in its order and words, so a bad campaign or lead fails the task with nothing sent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError

#: the documented ``messageType`` values; the vendor lists more as "coming soon"
MESSAGE_TYPES = ("connection_request", "first_follow_up", "share_material", "hiring_activity")
#: ``leads_data`` fields whose name does not follow the ``<messageType>_message`` pattern
MESSAGE_FIELDS = {"connection_request": "outreach_message"}
REQUIRED_FIELDS = (
    "completion_notification_url",
    "automation_tool_customer_id",
    "automation_tool_campaign_id",
    "automation_tool_campaign_name",
    "proposition_company_name",
    "proposition_company_url",
)
URL_FIELDS = ("completion_notification_url", "proposition_company_url", "material_link")
LEAD_REQUIRED_FIELDS = ("first_name", "lead_company", "external_prospect_id", "linkedin")
#: per-lead notices: ``no_job_posts`` (Upscale), ``delete_notice`` and ``char_limit`` (legacy Koneksi)
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\Z", re.IGNORECASE)


def message_field(message_type: str) -> str:
    """The ``leads_data`` field of a ``messageType``: documented, else the ``<type>_message`` pattern."""
    return MESSAGE_FIELDS.get(message_type, f"{message_type}_message")


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def validate_secure_request_id(value: Any) -> str:
    """
    Return ``value`` if it is a UUID v4 in the 8-4-4-4-12 hex form, else raise LinkMsgValidationError.

    :param value: a ``secure_request_id``.
    """
    if not isinstance(value, str) or not UUID4.match(value.strip()):
        raise LinkMsgValidationError(
            f"secure_request_id must be a UUID v4 like a8bd1fec-94dd-4d6a-b54d-2109994748ac, got {value!r}: "
            "pass the id returned by the request-generation task",
            field="secure_request_id",
            vendor="koneksi",
        )
    return value.strip()


def generation_problems(payload: Mapping[str, Any], *, extra_message_types: Sequence[str] = ()) -> list[str]:
    """
    Every problem of a generation request, in the vendor's order and words; empty when valid.

    Each text starts with the path of the field it is about (``lead_data[2].first_name ...``).

    :param payload: the request body.
    :param extra_message_types: ``messageType`` values to accept beyond the documented ones.
    """
    problems = [
        f"{f} is required but was missing or blank" for f in REQUIRED_FIELDS if _blank(payload.get(f))
    ]
    problems += [
        f"{f} must be a valid HTTP or HTTPS URL"
        for f in URL_FIELDS
        if not _blank(payload.get(f)) and not _is_http_url(payload.get(f))
    ]
    sequence = payload.get("message_sequence")
    types: list[str] = []
    if not isinstance(sequence, list):
        problems.append("message_sequence must be an array")
    elif not sequence:
        problems.append("message_sequence must contain at least one step")
    else:
        allowed = (*MESSAGE_TYPES, *extra_message_types)
        steps = []
        for i, item in enumerate(sequence):
            item = item if isinstance(item, Mapping) else {}
            step, kind = item.get("step"), item.get("messageType")
            if isinstance(step, bool) or not isinstance(step, int) or step < 1:
                problems.append(f"message_sequence[{i}].step must be an integer starting at 1")
            else:
                steps.append(step)
            if kind not in allowed:
                problems.append(
                    f"message_sequence[{i}].messageType must be one of {', '.join(allowed)} (got {kind!r})"
                )
            elif kind in types:
                problems.append(f"message_sequence[{i}].messageType {kind} appears more than once")
            else:
                types.append(kind)
        if len(steps) == len(sequence) and sorted(steps) != list(range(1, len(steps) + 1)):
            problems.append("message_sequence steps must be consecutive integers starting at 1")
    for needed, step_type in (("material_link", "share_material"), ("hiring_location", "hiring_activity")):
        if step_type in types and _blank(payload.get(needed)):
            problems.append(f"{needed} is required but was missing or blank (a {step_type} step needs it)")
    leads = payload.get("lead_data")
    if not isinstance(leads, list) or not leads:
        return [*problems, "lead_data must contain at least one lead"]
    seen: dict[str, int] = {}
    for i, lead in enumerate(leads):
        if not isinstance(lead, Mapping):
            problems.append(f"lead_data[{i}] must be an object")
            continue
        problems += [
            f"lead_data[{i}].{k} is required but was missing or blank"
            for k in LEAD_REQUIRED_FIELDS
            if _blank(lead.get(k))
        ]
        lead_id = lead.get("external_prospect_id")
        if isinstance(lead_id, str) and lead_id in seen:
            problems.append(f"lead_data[{i}].external_prospect_id duplicates lead_data[{seen[lead_id]}]")
        elif isinstance(lead_id, str):
            seen[lead_id] = i
    return problems


def validate_generation_request(payload: Any, *, extra_message_types: Sequence[str] = ()) -> None:
    """
    Raise :class:`LinkMsgValidationError` naming the first bad field (``.field``; all of them in
    ``.fields``) if ``payload`` is not a valid generation request. Nothing is sent.

    :param payload: the request body.
    :param extra_message_types: ``messageType`` values to accept beyond the documented ones.
    """
    if not isinstance(payload, Mapping):
        raise LinkMsgValidationError(
            "the generation request must be a JSON object", field="payload", vendor="koneksi"
        )
    problems = generation_problems(payload, extra_message_types=extra_message_types)
    if problems:
        fields = [text.split(" ", 1)[0] for text in problems]
        error = LinkMsgValidationError(
            f"invalid generation request, nothing was sent (no credits used): {'; '.join(problems)}. "
            "Fix the campaign or leads and run the task again.",
            field=fields[0],
            vendor="koneksi",
        )
        error.fields = fields
        raise error


def count_messages(payload: Mapping[str, Any]) -> int:
    """How many messages a (valid) request asks for: leads x steps."""
    return len(payload.get("lead_data") or []) * len(payload.get("message_sequence") or [])
