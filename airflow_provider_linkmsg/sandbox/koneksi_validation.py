"""
Koneksi in the sandbox: its own validation of a generation request (contract part 1, §1.8).

Every problem is collected, in the contract's order, so the route answers one 422 whose text joins them.
This is the vendor's side, kept apart from the hook's client-side checks on purpose: the sandbox is what
tests the client, so it must not share the client's code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

ALLOWED_TYPES = ("connection_request", "first_follow_up", "share_material", "hiring_activity")
REQUIRED_STRINGS = (
    "completion_notification_url",
    "automation_tool_customer_id",
    "automation_tool_campaign_id",
    "automation_tool_campaign_name",
    "proposition_company_name",
    "proposition_company_url",
)
LEAD_REQUIRED = ("first_name", "lead_company", "external_prospect_id", "linkedin")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE)


def blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def is_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value.strip())
    return parts.scheme in ("http", "https") and bool(parts.netloc)


class KoneksiValidation:
    """The generation request's checks, with the message types the options allow."""

    options: dict[str, Any]

    def allowed_types(self) -> tuple[str, ...]:
        extra = list(self.options.get("extra_message_types", []))
        if self.options.get("accept_stage_ambition"):
            extra.append("stage_ambition")
        return (*ALLOWED_TYPES, *extra)

    def validate(self, body: Mapping[str, Any]) -> list[str]:
        """Every problem of a generation request, in the contract's order (§1.8)."""
        errors = [f"{f} is required but was missing or blank" for f in REQUIRED_STRINGS if blank(body.get(f))]
        for f in ("completion_notification_url", "proposition_company_url", "material_link"):
            if not blank(body.get(f)) and not is_url(body.get(f)):
                errors.append(f"{f} must be a valid HTTP or HTTPS URL")
        sequence = body.get("message_sequence")
        types: list[str] = []
        if not isinstance(sequence, list):
            errors.append("message_sequence must be an array")
        elif not sequence:
            errors.append("message_sequence must contain at least one step")
        else:
            allowed = self.allowed_types()
            steps = []
            for i, item in enumerate(sequence):
                item = item if isinstance(item, dict) else {}
                step, kind = item.get("step"), item.get("messageType")
                if isinstance(step, bool) or not isinstance(step, int) or step < 1:
                    errors.append(f"message_sequence[{i}].step must be an integer starting at 1")
                else:
                    steps.append(step)
                if kind not in allowed:
                    errors.append(f"message_sequence[{i}].messageType must be one of {', '.join(allowed)}")
                elif kind in types:
                    errors.append(f"message_sequence[{i}].messageType {kind} appears more than once")
                else:
                    types.append(kind)
            if len(steps) == len(sequence) and sorted(steps) != list(range(1, len(steps) + 1)):
                errors.append("message_sequence steps must be consecutive integers starting at 1")
        if "share_material" in types and blank(body.get("material_link")):
            errors.append("material_link is required but was missing or blank")
        if "hiring_activity" in types and blank(body.get("hiring_location")):
            errors.append("hiring_location is required but was missing or blank")
        leads = body.get("lead_data")
        if not isinstance(leads, list) or not leads:
            errors.append("lead_data must contain at least one lead")
            return errors
        seen: dict[str, int] = {}
        for i, lead in enumerate(leads):
            if not isinstance(lead, dict):
                errors.append(f"lead_data[{i}] must be an object")
                continue
            errors += [
                f"lead_data[{i}].{k} is required but was missing or blank"
                for k in LEAD_REQUIRED
                if blank(lead.get(k))
            ]
            lead_id = lead.get("external_prospect_id")
            if isinstance(lead_id, str) and lead_id in seen:
                errors.append(f"lead_data[{i}].external_prospect_id duplicates lead_data[{seen[lead_id]}]")
            elif isinstance(lead_id, str):
                seen[lead_id] = i
        return errors
