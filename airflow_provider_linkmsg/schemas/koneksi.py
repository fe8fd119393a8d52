"""Koneksi answers (seed 001): ``GET /messages/retrieve_messages`` (200 complete, 202 in progress)."""

from __future__ import annotations

from pydantic import field_validator, model_validator

from airflow_provider_linkmsg.schemas.types import (
    Count,
    Loose,
    StrictBool,
    StrictInt,
    StrictStr,
    unique_ids,
)


class Metadata(Loose):
    generation_status: StrictStr | None = None
    status_message: StrictStr | None = None
    failed_messages_reason: StrictStr | None = None
    requested_message_count: Count | None = None
    requested_messages_count: Count | None = None
    generated_message_count: Count | None = None
    generated_messages_count: Count | None = None
    failed_messages_count: Count | None = None
    failed_message_count: Count | None = None


class Step(Loose):
    step: StrictInt
    messageType: StrictStr


class Lead(Loose):
    """A lead's row: its id, and one ``*_message`` field per step (text, or null while pending/failed)."""

    external_prospect_id: StrictStr | StrictInt
    linkedin: StrictStr | None = None
    no_job_posts: StrictBool | StrictStr | None = None

    @model_validator(mode="after")
    def _messages_are_text(self) -> Lead:
        for name, value in (self.model_extra or {}).items():
            if name.endswith("_message") and value is not None and not isinstance(value, str):
                raise ValueError(f"{name} must be text or null, got {type(value).__name__}")
        return self


class Campaign(Loose):
    automation_tool_campaign_id: StrictStr | StrictInt | None = None
    automation_tool_campaign_name: StrictStr | None = None
    message_sequence: list[Step] | None = None
    leads_data: list[Lead] | None = None

    @field_validator("leads_data")
    @classmethod
    def _unique(cls, items: list[Lead] | None) -> list[Lead] | None:
        return unique_ids(items, "external_prospect_id")  # as text: 7 and "7" are one lead


class Account(Loose):
    automation_tool_customer_id: StrictStr | StrictInt | None = None


class RetrieveAnswer(Loose):
    """
    The whole answer; a generation that reports generated messages must carry leads to hold them, and a
    complete one must hold exactly as many messages (non-null ``*_message`` fields) as it reports generated.
    """

    metadata: Metadata
    account: Account | None = None
    campaign: Campaign | None = None

    @model_validator(mode="after")
    def _leads_hold_what_is_reported(self) -> RetrieveAnswer:
        meta = self.metadata
        generated = meta.generated_message_count or meta.generated_messages_count or 0
        leads = (self.campaign.leads_data if self.campaign else None) or []
        steps = (self.campaign.message_sequence if self.campaign else None) or []
        if generated and not (leads and steps):
            raise ValueError(
                f"reports {generated} generated message(s) but carries no leads_data or message_sequence "
                "to hold them"
            )
        if meta.generation_status == "complete":
            present = sum(
                1
                for lead in leads
                for name, value in (lead.model_extra or {}).items()
                if name.endswith("_message") and value is not None
            )
            if present != generated:
                raise ValueError(
                    f"a complete generation reports {generated} generated message(s) but holds {present}"
                )
        return self
