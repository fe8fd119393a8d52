"""
Normalized records: one :class:`Message` shape for the three inbox vendors, one :class:`GeneratedMessage`
shape for Koneksi.

Both are frozen dataclasses with a stable ``key`` (the upsert key of the SQL export and the de-duplication
key of staging), UTC timestamps as ISO-8601 strings ending in ``Z``, and a JSON form that round-trips:
``Record.from_json(r.to_json()) == r``. The vendor's own JSON travels in ``raw`` only when asked for.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Self

Direction = Literal["inbound", "outbound"]
Channel = Literal["standard", "sales_navigator"]
GenerationStatus = Literal["generated", "pending", "failed"]


def to_utc_iso(value: datetime | int | float | str) -> str:
    """
    Normalize a vendor timestamp to ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC).

    Accepts an aware or naive (taken as UTC) datetime, epoch milliseconds (int/float, as ConnectSafely and
    LinkupAPI send), or an ISO-8601 string (as Linked API sends, with ``Z`` or an offset).
    """
    if isinstance(value, bool):
        raise TypeError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        dt = datetime.fromtimestamp(value / 1000, tz=UTC)
    elif isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            dt = datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        else:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    elif isinstance(value, datetime):
        dt = value
    else:
        raise TypeError(f"not a timestamp: {value!r}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(value: str) -> datetime:
    """Parse a timestamp written by :func:`to_utc_iso` (or any ISO-8601 string) into an aware datetime."""
    return datetime.fromisoformat(to_utc_iso(value).replace("Z", "+00:00"))


def utc_to_epoch_ms(value: str) -> int:
    """Epoch milliseconds of an ISO-8601 timestamp (for vendors whose cursors are epoch ms)."""
    dt = parse_utc(value)
    return int(dt.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class _Record:
    record_type: ClassVar[str]

    def to_dict(self, *, include_raw: bool = True) -> dict[str, Any]:
        """A plain dict with ``key`` first; ``raw`` is dropped when ``include_raw`` is false or unset."""
        data = {"key": self.key}
        for f in dataclasses.fields(self):
            data[f.name] = getattr(self, f.name)
        if not include_raw or data.get("raw") is None:
            data.pop("raw", None)
        return data

    def to_json(self, *, include_raw: bool = True) -> str:
        """One line of JSON (no newline), keys in field order: the JSON Lines form of staging."""
        return json.dumps(self.to_dict(include_raw=include_raw), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, line: str | bytes) -> Self:
        return cls.from_dict(json.loads(line))

    @property
    def key(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Message(_Record):
    """
    One message of a LinkedIn inbox conversation (ConnectSafely, Linked API, LinkupAPI).

    :param vendor: ``connectsafely``, ``linkedapi`` or ``linkup``.
    :param account_id: the vendor's id for the LinkedIn account whose inbox this is.
    :param conversation_id: the vendor's conversation id (URN, thread id, or the person URL for Linked API).
    :param message_id: the vendor's message id (URN or UUID); unique within the account.
    :param sent_at: UTC ISO-8601 (see :func:`to_utc_iso`).
    :param direction: ``outbound`` when the account owner sent it, else ``inbound``.
    :param sender_id: profile id, slug or URL of the sender, when the vendor gives one.
    :param sender_name: display name of the sender, when the vendor gives one.
    :param text: message text (may be empty for system messages).
    :param message_type: the vendor's type (``TEXT``, ``INVITATION`` ...), ``TEXT`` when it has none.
    :param has_attachments: whether the message carries attachments.
    :param channel: ``standard`` inbox or ``sales_navigator``.
    :param raw: the vendor's original JSON for this message, only when requested.
    """

    record_type: ClassVar[str] = "message"

    vendor: str
    account_id: str
    conversation_id: str
    message_id: str
    sent_at: str
    direction: Direction
    sender_id: str | None = None
    sender_name: str | None = None
    text: str = ""
    message_type: str = "TEXT"
    has_attachments: bool = False
    channel: Channel = "standard"
    raw: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """``vendor:account_id:message_id``: stable across runs and re-reads."""
        return f"{self.vendor}:{self.account_id}:{self.message_id}"


@dataclass(frozen=True, slots=True)
class GeneratedMessage(_Record):
    """
    One Koneksi-generated message: a lead and one message type of the campaign's sequence.

    :param request_id: the generation's ``secure_request_id``.
    :param lead_id: the lead's ``external_prospect_id``.
    :param message_type: the sequence's ``messageType`` (``connection_request``, ``first_follow_up`` ...).
    :param step: the step of the sequence that has this type.
    :param status: ``generated``, ``pending`` (still in progress) or ``failed``.
    :param text: the generated text; ``None`` unless ``status`` is ``generated``.
    :param linkedin: the lead's LinkedIn URL as the vendor echoes it.
    :param campaign_id: ``automation_tool_campaign_id``.
    :param customer_id: ``automation_tool_customer_id``.
    :param notice: a per-lead notice (``no_job_posts``, ``delete_notice``, ``char_limit``) or failure reason.
    :param retrieved_at: UTC ISO-8601 time of the retrieval that produced this record.
    :param raw: the vendor's lead object, only when requested.
    """

    record_type: ClassVar[str] = "generated_message"

    request_id: str
    lead_id: str
    message_type: str
    step: int
    status: GenerationStatus
    text: str | None = None
    linkedin: str | None = None
    campaign_id: str | None = None
    customer_id: str | None = None
    notice: str | None = None
    retrieved_at: str | None = field(default=None, compare=False)
    vendor: str = "koneksi"
    raw: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def key(self) -> str:
        """``koneksi:request_id:lead_id:message_type``."""
        return f"{self.vendor}:{self.request_id}:{self.lead_id}:{self.message_type}"


RECORD_TYPES: dict[str, type[Message] | type[GeneratedMessage]] = {
    Message.record_type: Message,
    GeneratedMessage.record_type: GeneratedMessage,
}
