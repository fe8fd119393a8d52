"""
Linked API's vocabulary, shared by the hook and its two API adapters: persons, per-person outcomes, job
statuses and the messages read for a person. Pure: no HTTP, no Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from airflow_provider_linkmsg.exceptions import LinkMsgResponseError, LinkMsgValidationError
from airflow_provider_linkmsg.records import to_utc_iso

ApiGeneration = Literal["seed", "current"]
ResultHandling = Literal["long", "reslink"]
JobState = Literal["pending", "running", "completed", "failed", "cancelled"]

APIS: tuple[str, ...] = ("seed", "current")
RESULT_HANDLING: tuple[str, ...] = ("long", "reslink")
TERMINAL_STATES = frozenset({"completed", "failed", "cancelled"})
#: channel codes of the current API, by the seed's list names and the other spellings users write
CHANNEL_ALIASES = {
    "st": "st",
    "standard": "st",
    "nv": "nv",
    "salesnavigator": "nv",
    "sales_navigator": "nv",
    "sales-navigator": "nv",
}
SEED_LISTS = {"st": "standard", "nv": "salesNavigator"}
RECORD_CHANNELS = {"st": "standard", "nv": "sales_navigator"}
#: error types that mean "this conversation has not been synchronized (or its sync ran out)"
NOT_SYNCED_ERRORS = frozenset({"notSynchronized", "conversationsNotSynced"})
AUTH_CODES = frozenset(
    {
        "linkedApiTokenRequired",
        "invalidLinkedApiToken",
        "identificationTokenRequired",
        "invalidIdentificationToken",
        "accountApiTokenRequired",
        "linkedinAccountSignedOut",
    }
)
PLAN_CODES = frozenset(
    {"subscriptionRequired", "trialLimitReached", "plusPlanRequired", "noAvailableSeats", "noActiveSeats"}
)


# --------------------------------------------------------------------------------------------------------
# Persons
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Person:
    """
    One conversation to synchronize or read: a person's LinkedIn URL on a channel.

    :param url: normalized LinkedIn profile (``/in/<slug>``) or Sales Navigator (``/sales/people/<id>``,
        ``/sales/lead/<id>``) URL.
    :param channel: ``st`` (standard messaging) or ``nv`` (Sales Navigator).
    """

    url: str
    channel: str = "st"

    @property
    def key(self) -> str:
        """``st:<url>`` / ``nv:<url>``: the person's key in state files and job labels."""
        return f"{self.channel}:{self.url}"

    @property
    def conversation_id(self) -> str:
        """The record's conversation id: the URL, with ``#sales_navigator`` for that channel."""
        return self.url if self.channel == "st" else f"{self.url}#sales_navigator"

    def spec(self) -> dict[str, str]:
        """``{"person": url, "channel": "standard" | "salesNavigator"}``: the form operators take."""
        return {"person": self.url, "channel": SEED_LISTS[self.channel]}

    @classmethod
    def from_key(cls, key: str) -> Person:
        channel, url = key.split(":", 1)
        return cls(url, channel)


def normalize_person_url(url: str, *, field: str = "persons") -> str:
    """
    Check that ``url`` is a LinkedIn profile or Sales Navigator URL and normalize it.

    The result uses ``https://www.linkedin.com``, keeps the path without a trailing slash and drops the
    query and fragment, so the same person always gets the same key.

    :param url: the URL as the user wrote it.
    :param field: the field named in the error.
    :raises LinkMsgValidationError: when it is not such a URL.
    """
    text = url.strip() if isinstance(url, str) else ""
    parts = urlsplit(text if "://" in text else f"https://{text}")
    host = parts.netloc.lower()
    segments = [s for s in parts.path.split("/") if s]
    profile = len(segments) == 2 and segments[0] == "in"
    sales = len(segments) == 3 and segments[:2] in (["sales", "people"], ["sales", "lead"])
    is_linkedin = host == "linkedin.com" or host.endswith(".linkedin.com")
    if not text or parts.scheme not in ("http", "https") or not is_linkedin or not (profile or sales):
        raise LinkMsgValidationError(
            f"{field}: {url!r} is not a LinkedIn profile URL (https://www.linkedin.com/in/<slug>) or a Sales "
            "Navigator URL (https://www.linkedin.com/sales/people/<id> or /sales/lead/<id>); fix the "
            "person list",
            field=field,
            vendor="linkedapi",
        )
    return "https://www.linkedin.com/" + "/".join(segments)


def parse_person(item: Any, *, field: str = "persons[0]") -> Person:
    """
    One person from a URL string (a ``/sales/...`` URL means Sales Navigator, any other standard), a dict
    ``{"person" | "url" | "personUrl": URL, "channel" | "type": "standard" | "salesNavigator" | "st" | "nv"}``
    or a :class:`Person`.

    :raises LinkMsgValidationError: on a bad URL or an unknown channel, naming ``field``.
    """
    channel_value: Any = None
    if isinstance(item, Person):
        url, channel_value = item.url, item.channel
    elif isinstance(item, Mapping):
        url = item.get("person") or item.get("url") or item.get("personUrl")
        channel_value = item.get("channel") or item.get("type")
    else:
        url = item
    url = normalize_person_url(url, field=field)
    if channel_value is None:
        return Person(url, "nv" if "/sales/" in url else "st")
    channel = CHANNEL_ALIASES.get(str(channel_value).lower().replace(" ", ""))
    if channel is None:
        raise LinkMsgValidationError(
            f"{field}: channel {channel_value!r} is not 'standard' or 'salesNavigator'",
            field=f"{field}.channel",
            vendor="linkedapi",
        )
    return Person(url, channel)


def parse_persons(persons: Any, *, field: str = "persons") -> list[Person]:
    """
    Validate and normalize a person list (items as :func:`parse_person` takes them) before any call.

    Duplicates are dropped, order is kept.

    :raises LinkMsgValidationError: on an empty list, a bad URL or an unknown channel, naming the item.
    """
    if isinstance(persons, str | bytes | Mapping) or not isinstance(persons, Iterable):
        raise LinkMsgValidationError(
            f"{field} must be a list of LinkedIn URLs or {{'person': URL, 'channel': ...}} dicts, "
            f"got {type(persons).__name__}",
            field=field,
            vendor="linkedapi",
        )
    out = {parse_person(item, field=f"{field}[{i}]"): None for i, item in enumerate(persons)}
    if not out:
        raise LinkMsgValidationError(
            f"{field} is empty: give at least one LinkedIn person URL", field=field, vendor="linkedapi"
        )
    return list(out)


# --------------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SyncOutcome:
    """
    What synchronization did for one person.

    :param person: the person's normalized URL.
    :param channel: ``st`` or ``nv``.
    :param status: ``synced``, ``not_found`` or ``failed``.
    :param error: the vendor's error type, when not synced.
    :param message: the vendor's error message, when not synced.
    """

    person: str
    channel: str
    status: Literal["synced", "not_found", "failed"]
    error: str | None = None
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class JobStatus:
    """
    The state of a synchronization job (all its workflows or result links together).

    :param state: ``pending``, ``running``, ``completed``, ``failed`` or ``cancelled``.
    :param reason: why it is pending (``queued``, ``outsideWorkingHours``) or why it failed.
    :param message: the vendor's message for that reason.
    :param outcomes: per-person outcomes, once completed.
    """

    state: JobState
    reason: str | None = None
    message: str | None = None
    outcomes: list[SyncOutcome] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def outside_working_hours(self) -> bool:
        return self.state == "pending" and self.reason == "outsideWorkingHours"

    def describe(self) -> str:
        text = self.state + (f" ({self.reason})" if self.reason else "")
        return f"{text}: {self.message}" if self.message else text

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "reason": self.reason,
            "message": self.message,
            "outcomes": [o.to_dict() for o in self.outcomes],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobStatus:
        return cls(
            state=data["state"],
            reason=data.get("reason"),
            message=data.get("message"),
            outcomes=[SyncOutcome(**o) for o in data.get("outcomes") or []],
        )


@dataclass(frozen=True)
class PersonMessages:
    """
    The messages read for one person, or why none could be read.

    :param person: the person and channel.
    :param since: the ``since`` sent, if any.
    :param messages: the vendor's messages (``id``, ``sender``, ``text``, ``time`` ...), oldest first.
    :param error: ``notSynchronized`` / ``conversationsNotSynced`` / ``personNotFound`` ..., or ``None``.
    :param message: the vendor's error message.
    """

    person: Person
    since: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    message: str | None = None

    @property
    def not_synced(self) -> bool:
        return self.error in NOT_SYNCED_ERRORS


def batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    """``items`` in slices of ``size``."""
    for start in range(0, len(items), size):
        yield items[start : start + size]


def since_param(value: str | None, field: str = "since") -> str | None:
    """A ``since`` as the vendor writes times (seconds, ``Z``), floored so nothing is skipped."""
    if value is None:
        return None
    try:
        return to_utc_iso(value)[:19] + "Z"
    except (TypeError, ValueError):
        raise LinkMsgValidationError(
            f"{field} {value!r} is not a time: give an ISO-8601 timestamp such as 2026-01-01T09:00:00Z",
            field=field,
            vendor="linkedapi",
        ) from None


def answered_person(
    url: Any, channel: str, *, endpoint: str, method: str = "POST", field: str = "personUrl"
) -> Person:
    """
    The person an answer item names, normalized as the request's persons are.

    :param url: the item's person URL.
    :param channel: ``st`` or ``nv``.
    :param endpoint: the endpoint that answered, for the error.
    :param method: its method.
    :param field: the item's field that holds the URL (``person`` in seed answers).
    :raises LinkMsgResponseError: when the vendor's item names no LinkedIn URL (a malformed answer, not a
        bad argument: a watcher survives it, a task fails before anything is staged).
    """
    try:
        return Person(normalize_person_url(url, field=field), channel)
    except LinkMsgValidationError:
        raise LinkMsgResponseError(
            f"malformed answer: {field}: {str(url)[:80]!r} is not a LinkedIn person URL. Nothing from this "
            "answer was mapped or staged; the vendor's answer does not match its documented shape.",
            vendor="linkedapi",
            method=method,
            endpoint=endpoint,
        ) from None


def outcome(person: Person, success: Any, error: Mapping[str, Any] | None) -> SyncOutcome:
    if success:
        return SyncOutcome(person.url, person.channel, "synced")
    error = error or {}
    code = error.get("errorType") or error.get("type") or "unknown"
    status = "not_found" if code == "personNotFound" else "failed"
    return SyncOutcome(person.url, person.channel, status, code, error.get("message"))


def combined(statuses: list[JobStatus], outcomes: list[SyncOutcome]) -> JobStatus:
    """One state for a job of several parts: failed, cancelled, pending, running, else completed."""
    for state in ("failed", "cancelled", "pending", "running"):
        found = [s for s in statuses if s.state == state]
        if found:
            worst = next((s for s in found if s.outside_working_hours), found[0])
            return JobStatus(state, worst.reason, worst.message)
    return JobStatus("completed", outcomes=outcomes + [o for s in statuses for o in s.outcomes])
