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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring as _json_str  # the C escaper json.dumps(ensure_ascii=False) uses
from operator import attrgetter
from typing import Any, ClassVar, Literal, Self

Direction = Literal["inbound", "outbound"]
Channel = Literal["standard", "sales_navigator"]
GenerationStatus = Literal["generated", "pending", "failed"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)
#: the JSON Lines encoder of staging (one, reused: ``json.dumps`` with options builds one per call)
_JSON_LINE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _format_utc(dt: datetime) -> str:
    """An aware UTC datetime as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (``isoformat``: a C call, no strftime)."""
    if dt.year < 1000:  # strftime's %Y does not pad years before 1000: keep its form there
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{dt.replace(tzinfo=None).isoformat(timespec='microseconds')}Z"


#: epoch ms below this (2^33 s, year 2242) convert through ``value / 1000`` without rounding: there
#: :func:`_format_epoch_ms` writes what ``datetime.fromtimestamp(value / 1000)`` would
_EXACT_MS = (1 << 33) * 1000
_EPOCH_DAY = _EPOCH.date()
#: ``YYYY-MM-DD`` by days since 1970 (the dates a run meets; emptied past _MAX_DAYS)
_DAYS: dict[int, str] = {}
_MAX_DAYS = 10_000


def _format_epoch_ms(value: int) -> str:
    """Epoch ms, 0 <= value < :data:`_EXACT_MS`, in :func:`to_utc_iso`'s form, by integer arithmetic."""
    day, ms = divmod(value, 86_400_000)
    date = _DAYS.get(day)
    if date is None:
        if len(_DAYS) >= _MAX_DAYS:
            _DAYS.clear()
        date = _DAYS[day] = (_EPOCH_DAY + timedelta(days=day)).isoformat()
    minute, ms = divmod(ms, 60_000)
    second, ms = divmod(ms, 1000)
    return f"{date}T{_HH_MM[minute]}:{_SS[second]}.{_MILLIS[ms]}Z"


#: ``HH:MM`` by minute of the day, ``SS`` by second, ``mmm000`` by millisecond: :func:`_format_epoch_ms`'s parts
_HH_MM = tuple(f"{m // 60:02d}:{m % 60:02d}" for m in range(1440))
_SS = tuple(f"{s:02d}" for s in range(60))
_MILLIS = tuple(f"{ms:03d}000" for ms in range(1000))


def to_utc_iso(value: datetime | int | float | str) -> str:
    """
    Normalize a vendor timestamp to ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC).

    Accepts an aware or naive (taken as UTC) datetime, epoch milliseconds (int/float, as ConnectSafely and
    LinkupAPI send), or an ISO-8601 string (as Linked API sends, with ``Z`` or an offset).
    """
    if type(value) is int:  # epoch ms, the common case: already UTC
        if 0 <= value < _EXACT_MS:
            return _format_epoch_ms(value)
        return _format_utc(datetime.fromtimestamp(value / 1000, tz=UTC))
    if isinstance(value, bool):
        raise TypeError(f"not a timestamp: {value!r}")
    if type(value) is str and len(value) == 27 and value[-1] == "Z" and value[10] == "T" and value[19] == ".":
        try:  # already in this form (what we write): parsed only to check it
            naive = datetime.fromisoformat(value[:-1])
        except ValueError:
            naive = None  # not a date after all: the general path says why
        if naive is not None and naive.tzinfo is None:
            return _format_utc(naive.replace(tzinfo=UTC))
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
    return _format_utc(dt.astimezone(UTC))


def parse_utc(value: str) -> datetime:
    """Parse a timestamp written by :func:`to_utc_iso` (or any ISO-8601 string) into an aware datetime."""
    if type(value) is str and len(value) == 27 and value[-1] == "Z" and value[10] == "T" and value[19] == ".":
        try:  # our own form: parsed once
            naive = datetime.fromisoformat(value[:-1])
        except ValueError:
            naive = None  # not a date after all: the general path says why
        if naive is not None and naive.tzinfo is None and naive.year >= 1000:
            return naive.replace(tzinfo=UTC)
    return datetime.fromisoformat(to_utc_iso(value)[:-1]).replace(tzinfo=UTC)


def utc_to_epoch_ms(value: str | int | float) -> int:
    """
    Epoch milliseconds of a timestamp (for vendors whose cursors are epoch ms), exact: counted in whole
    milliseconds of the datetime, not through a float (which lands one below for some values). An int is
    already epoch ms (:func:`to_utc_iso` reads it so).
    """
    if type(value) is int:
        return value
    return (parse_utc(value) - _EPOCH) // _MS


@dataclass(frozen=True, slots=True)
class _Record:
    record_type: ClassVar[str]

    #: the field names, in order (set per class below: ``dataclasses.fields`` per record is costly)
    _names: ClassVar[tuple[str, ...]] = ()
    #: ``(name, ',"name":')`` per field but ``raw`` (the last), in order: the JSON line's labels (set below)
    _labels: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: the values of the fields of ``_labels``, in order, in one call (set below)
    _values: ClassVar[Callable[[Any], tuple[Any, ...]]] = staticmethod(lambda record: ())

    def to_dict(self, *, include_raw: bool = True) -> dict[str, Any]:
        """A plain dict with ``key`` first; ``raw`` is dropped when ``include_raw`` is false or unset."""
        data = {"key": self.key}
        for name in self._names:
            data[name] = getattr(self, name)
        if not include_raw or data.get("raw") is None:
            data.pop("raw", None)
        return data

    def to_json(self, *, include_raw: bool = True) -> str:
        """
        One line of JSON (no newline), keys in field order: the JSON Lines form of staging.

        The bytes of ``json.dumps(self.to_dict(include_raw=...), ensure_ascii=False, separators=(",", ":"))``,
        written without the intermediate dict: text, ``None`` and booleans through the encoder's own pieces,
        any other value (numbers, ``raw``) through the encoder itself.
        """
        parts = ['{"key":', _json_str(self.key)]
        for (_, label), value in zip(self._labels, self._values(self), strict=True):
            kind = type(value)
            if kind is str:
                parts += (label, _json_str(value))
            elif value is None:
                parts += (label, "null")
            elif kind is bool:
                parts += (label, "true" if value else "false")
            else:
                parts += (label, _JSON_LINE.encode(value))
        raw = self.raw if include_raw else None  # the last field (checked below)
        if raw is not None:
            parts += (',"raw":', _JSON_LINE.encode(raw))
        parts.append("}")
        return "".join(parts)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        names = cls._names
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


for _cls in (Message, GeneratedMessage):
    _cls._names = tuple(f.name for f in dataclasses.fields(_cls))
    if _cls._names[-1] != "raw":  # to_json writes raw last
        raise TypeError(f"{_cls.__name__}: raw must be the last field")
    _cls._labels = tuple((name, f",{_json_str(name)}:") for name in _cls._names[:-1])
    _cls._values = staticmethod(attrgetter(*_cls._names[:-1]))  # two names at least: a tuple
del _cls

RECORD_TYPES: dict[str, type[Message] | type[GeneratedMessage]] = {
    Message.record_type: Message,
    GeneratedMessage.record_type: GeneratedMessage,
}
