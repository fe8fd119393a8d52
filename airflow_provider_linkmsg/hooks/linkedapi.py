"""
Hook for Linked API: conversation synchronization and retrieval, for the seed's API and the current one.

Linked API reads LinkedIn conversations in two steps: a slow *synchronization* of each person's
conversation (an asynchronous job), then near-instant *retrieval* of its messages since a time. Two
generations of the API do this, and the connection extra ``api`` says which one an account is on:

* ``seed`` (the default; seed 003): ``POST /account/conversations.synchronize`` and
  ``POST /account/conversations.get``, with ``result-handling: long`` (the server holds the request until
  the result is ready) or ``reslink`` (it answers at once with a result link to poll).
* ``current`` (what the official SDK uses today): ``POST /workflows`` of ``st|nv.syncConversation`` actions,
  ``GET``/``DELETE /workflows/{id}``, and ``POST /conversations/poll``.

:class:`LinkedApiHook` hides the difference behind one set of methods: :meth:`~LinkedApiHook.synchronize`
returns a small JSON *job handle*, :meth:`~LinkedApiHook.check_job`, :meth:`~LinkedApiHook.wait_for_job` and
:meth:`~LinkedApiHook.cancel_job` take it, and :meth:`~LinkedApiHook.get_messages` yields one
:class:`PersonMessages` per person. Per-person failures (``personNotFound``, ``notSynchronized``,
``conversationsNotSynced``, ``noSalesNavigator``) come back as data, never as one exception for a batch.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any, Literal
from urllib.parse import urlsplit

from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgBudgetExceededError,
    LinkMsgError,
    LinkMsgForeignOriginError,
    LinkMsgResponseError,
    LinkMsgValidationError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.hooks.base import LinkMsgHook, _short
from airflow_provider_linkmsg.hooks.forms import ConnectionFormMixin
from airflow_provider_linkmsg.records import Message, to_utc_iso
from airflow_provider_linkmsg.schemas import linkedapi as schema
from airflow_provider_linkmsg.schemas import parse

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
_AUTH_CODES = frozenset(
    {
        "linkedApiTokenRequired",
        "invalidLinkedApiToken",
        "identificationTokenRequired",
        "invalidIdentificationToken",
        "accountApiTokenRequired",
        "linkedinAccountSignedOut",
    }
)
_PLAN_CODES = frozenset(
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


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _since_param(value: str | None, field: str = "since") -> str | None:
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


# --------------------------------------------------------------------------------------------------------
# The hook
# --------------------------------------------------------------------------------------------------------
class LinkedApiHook(ConnectionFormMixin, LinkMsgHook):
    """
    Interact with Linked API: synchronize conversations and read their messages.

    The connection's password is the ``linked-api-token``; its extra holds ``identification_token`` (one
    per LinkedIn account) and ``api`` (``seed``, the default, or ``current``).

    :param linkedapi_conn_id: Airflow connection of type ``linkedapi``.
    :param long_poll_timeout: read timeout, in seconds, of a seed call in ``long`` result handling.
    """

    conn_type = "linkedapi"
    conn_name_attr = "linkedapi_conn_id"
    default_conn_name = "linkedapi_default"
    hook_name = "Linked API"
    vendor = "linkedapi"

    def __init__(
        self, linkedapi_conn_id: str = default_conn_name, *, long_poll_timeout: float = 600.0, **kwargs: Any
    ) -> None:
        super().__init__(linkedapi_conn_id, **kwargs)
        self.long_poll_timeout = long_poll_timeout

    # ---- connection ----------------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        return {
            "linked-api-token": self.conn_params.api_key,
            "identification-token": self.identification_token,
        }

    @cached_property
    def identification_token(self) -> str:
        token = self.extra("identification_token")
        if not token:
            raise LinkMsgAuthError(
                f"connection {self.conn_id!r} has no identification_token: add the LinkedIn account's "
                "identification token to the connection's extra",
                vendor=self.vendor,
            )
        return str(token)

    @cached_property
    def api(self) -> ApiGeneration:
        """``seed`` or ``current``, from the connection extra ``api`` (checked before any call)."""
        value = str(self.extra("api", "seed")).strip().lower()
        if value not in APIS:
            raise LinkMsgValidationError(
                f"connection {self.conn_id!r}: extra 'api' is {value!r}; use 'seed' (POST "
                "/account/conversations.*) or 'current' (POST /workflows and /conversations/poll)",
                field="api",
                vendor=self.vendor,
            )
        return value  # type: ignore[return-value]

    @cached_property
    def account_id(self) -> str:
        """A stable, non-secret id of the connection's LinkedIn account (a digest of its token)."""
        return "la-" + hashlib.sha256(self.identification_token.encode()).hexdigest()[:12]

    def check_connection(self) -> str:
        result = (self.request("GET", "/account").data or {}).get("result") or {}
        return f"account {result.get('name', 'unknown')} ({self.api} API)"

    @staticmethod
    def result_handling(value: str | None, default: ResultHandling) -> ResultHandling:
        """Validate a ``result-handling`` mode (``long`` or ``reslink``); ``None`` gives ``default``."""
        if value is None:
            return default
        if value not in RESULT_HANDLING:
            raise LinkMsgValidationError(
                f"result_handling is {value!r}; use 'long' (the server holds the request until done) or "
                "'reslink' (poll a result link)",
                field="result_handling",
                vendor="linkedapi",
            )
        return value  # type: ignore[return-value]

    # ---- errors --------------------------------------------------------------------------------------
    def describe_error(self, status: int, body: Any, text: str) -> tuple[str, str | None]:
        """Both envelopes: ``{"error": {"type", "message"}}`` and the seed's ``{"errorType", "message"}``."""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            err = body["error"]
            code = err.get("type") or err.get("errorType")
            return _short(self.redact(str(err.get("message") or code or f"HTTP {status}"))), code
        return super().describe_error(status, body, text)

    def error_class(self, status: int, code: str | None) -> type[LinkMsgError]:
        if code in _AUTH_CODES:
            return LinkMsgAuthError
        if code in _PLAN_CODES:
            return LinkMsgBudgetExceededError
        return super().error_class(status, code)

    def _seed_failure(self, body: Mapping[str, Any], endpoint: str) -> LinkMsgError:
        err = body.get("error") or {}
        code = err.get("errorType") or err.get("type")
        cls = self.error_class(200, code) if code in _AUTH_CODES | _PLAN_CODES else LinkMsgVendorError
        code = None if code is None else _short(self.redact(str(code)))
        message = _short(self.redact(str(err.get("message") or code)))
        return cls(message, vendor=self.vendor, endpoint=endpoint, code=code)

    # ---- synchronization ----------------------------------------------------------------------------
    def synchronize(
        self,
        persons: Any,
        *,
        result_handling: str | None = None,
        batch_size: int = 100,
        on_started: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """
        Start synchronizing the persons' conversations; return the job handle (small, JSON).

        Seed API: one ``conversations.synchronize`` call per ``batch_size`` persons, ``reslink`` by default
        (the seed's advice); in ``long`` mode the call returns when the work is done and the handle holds
        the outcomes. Current API: one workflow of ``syncConversation`` actions per batch.

        :param persons: URLs or dicts (see :func:`parse_persons`).
        :param result_handling: seed API only: ``reslink`` (default) or ``long``.
        :param batch_size: persons per call.
        :param on_started: called with the handle so far after each batch's job started, so a caller can
            keep it before the next (paid) start could fail.
        :return: ``{"api", "kind": "result_links" | "workflows" | "done", "jobs": [...], "outcomes"?: [...]}``
        """
        people = parse_persons(persons)
        mode = self.result_handling(result_handling, "reslink")
        jobs: list[str] = []
        outcomes: list[dict[str, Any]] = []

        def handle() -> dict[str, Any]:
            if self.api == "current":
                return {"api": "current", "kind": "workflows", "jobs": list(jobs)}
            kind = "result_links" if jobs else "done"
            return {"api": "seed", "kind": kind, "jobs": list(jobs), "outcomes": list(outcomes)}

        for batch in _batches(people, batch_size):
            if self.api == "current":
                jobs.append(self._start_workflow(batch))
            else:
                body = self._seed_call(
                    "/account/conversations.synchronize", self._seed_body(batch), mode, idempotent=False
                )
                if body.get("status") == "processing":
                    jobs.append(body["process"]["resultLink"])  # checked when it is fetched
                else:
                    outcomes.extend(o.to_dict() for o in self._seed_outcomes(body))
            if on_started is not None:
                on_started(handle())
        return handle()

    def _start_workflow(self, batch: Sequence[Person]) -> str:
        actions = [
            {"actionType": f"{p.channel}.syncConversation", "personUrl": p.url, "label": p.key} for p in batch
        ]
        data = self.request("POST", "/workflows", json_body=actions, idempotent=False).data or {}
        result = data.get("result") or {}
        if not result.get("workflowId"):
            raise LinkMsgResponseError(
                f"the answer has no workflowId: {_short(self.redact(str(data)))}",
                vendor=self.vendor,
                method="POST",
                endpoint="/workflows",
            )
        self.log.info(
            "Linked API workflow %s started for %d person(s): %s",
            result["workflowId"],
            len(batch),
            result.get("workflowStatus"),
        )
        return result["workflowId"]

    @staticmethod
    def _seed_body(batch: Iterable[Person], since: Mapping[Person, str | None] | None = None) -> dict:
        body: dict[str, list[dict[str, Any]]] = {}
        for p in batch:
            item: dict[str, Any] = {"person": p.url}
            if since and since.get(p):
                item["since"] = since[p]
            body.setdefault(SEED_LISTS[p.channel], []).append(item)
        return body

    def _seed_call(self, endpoint: str, body: dict, mode: ResultHandling, *, idempotent: bool) -> dict:
        """One seed call; a ``status: error`` answer raises, ``processing`` comes back with its link."""
        response = self.request(
            "POST",
            endpoint,
            json_body=body,
            headers={"result-handling": mode},
            idempotent=idempotent,
            timeout=max(self.conn_params.read_timeout, self.long_poll_timeout) if mode == "long" else None,
        )
        data = response.data or {}
        if data.get("status") == "error":
            raise self._seed_failure(data, endpoint)
        if data.get("status") not in ("complete", "processing"):
            raise LinkMsgResponseError(
                f"unexpected answer {_short(self.redact(str(data)))}", vendor=self.vendor, endpoint=endpoint
            )
        return data

    @staticmethod
    def _seed_items(completion: Mapping[str, Any]) -> Iterator[tuple[Person, dict[str, Any]]]:
        for channel, name in SEED_LISTS.items():
            for item in completion.get(name) or []:
                yield Person(normalize_person_url(item["person"]), channel), item.get("result") or {}

    def _seed_outcomes(self, body: Mapping[str, Any]) -> list[SyncOutcome]:
        return [
            self._redacted(_outcome(person, result.get("success"), result.get("error")))
            for person, result in self._seed_items(body.get("completion") or {})
        ]

    def _redacted(self, outcome: SyncOutcome) -> SyncOutcome:
        """``outcome`` with the vendor's error code and message passed through the redactor."""
        return replace(
            outcome, error=self._vendor_text(outcome.error), message=self._vendor_text(outcome.message)
        )

    def check_job(self, handle: Mapping[str, Any]) -> JobStatus:
        """
        One look at a job: its combined state and, once completed, the per-person outcomes.

        A job of several workflows or result links is ``failed`` if any failed, ``pending``/``running``
        while any is, and ``completed`` when all are.

        :param handle: what :meth:`synchronize` returned.
        """
        kind, outcomes = self._job_kind(handle)
        if kind == "done":
            return JobStatus("completed", outcomes=outcomes)
        check = self._check_workflow if kind == "workflows" else self._check_result_link
        return _combined([check(job) for job in handle["jobs"]], outcomes)

    async def acheck_job(self, handle: Mapping[str, Any]) -> JobStatus:
        """
        The async twin of :meth:`check_job` (for the trigger).

        :param handle: what :meth:`synchronize` returned.
        """
        kind, outcomes = self._job_kind(handle)
        if kind == "done":
            return JobStatus("completed", outcomes=outcomes)
        statuses = []
        for job in handle["jobs"]:
            if kind == "workflows":
                data = (await self.arequest("GET", f"/workflows/{job}")).data or {}
                statuses.append(self._workflow_status(data.get("result") or {}))
            else:
                statuses.append(
                    self._result_link_status((await self.arequest("GET", self._result_link(job))).data or {})
                )
        return _combined(statuses, outcomes)

    async def acancel_job(self, handle: Mapping[str, Any]) -> bool:
        """The async twin of :meth:`cancel_job` (for the trigger's ``on_kill``)."""
        if handle.get("kind") != "workflows":
            return False
        cancelled = False
        for workflow_id in handle["jobs"]:
            data = (await self.arequest("DELETE", f"/workflows/{workflow_id}")).data or {}
            cancelled = bool((data.get("result") or {}).get("cancelled")) or cancelled
        return cancelled

    def _job_kind(self, handle: Mapping[str, Any]) -> tuple[str, list[SyncOutcome]]:
        kind = handle.get("kind")
        if kind not in ("done", "result_links", "workflows"):
            raise LinkMsgValidationError(
                f"not a Linked API job handle: {handle!r}", field="handle", vendor=self.vendor
            )
        return kind, [SyncOutcome(**o) for o in handle.get("outcomes") or []]

    def _result_link(self, link: Any) -> str:
        """
        A result link the vendor gave: an absolute URL (then on the connection's origin, which
        :meth:`request` checks) or a path starting with ``/``; anything else (``@host/x``, ``.host/x``) would
        move the host once glued to the base URL, and is refused before anything is sent.
        """
        if isinstance(link, str) and (
            link.startswith(("http://", "https://")) or (link.startswith("/") and not link.startswith("//"))
        ):
            return link
        raise LinkMsgForeignOriginError(
            f"the result link {_short(self.redact(repr(link)))} is neither an absolute URL on the connection's "
            "origin nor a path starting with '/'; nothing was sent",
            vendor=self.vendor,
            endpoint="/account/results",
            location=_short(self.redact(str(link))),
        )

    def _check_result_link(self, link: str) -> JobStatus:
        return self._result_link_status(self.request("GET", self._result_link(link)).data or {})

    def _check_workflow(self, workflow_id: str) -> JobStatus:
        return self._workflow_status(
            (self.request("GET", f"/workflows/{workflow_id}").data or {}).get("result") or {}
        )

    def _result_link_status(self, data: Mapping[str, Any]) -> JobStatus:
        status = data.get("status")
        if status == "processing":
            return JobStatus("running", message=self._vendor_text((data.get("process") or {}).get("message")))
        if status == "complete":
            return JobStatus("completed", outcomes=self._seed_outcomes(data))
        err = data.get("error") or {}
        return JobStatus(
            "failed",
            self._vendor_text(err.get("errorType") or err.get("type")),
            self._vendor_text(err.get("message")),
        )

    def _workflow_status(self, result: Mapping[str, Any]) -> JobStatus:
        state = result.get("workflowStatus")
        if state in ("pending", "running"):
            return JobStatus(state, result.get("pendingReason"), self._vendor_text(result.get("message")))
        if state == "completed":
            items = result.get("completion") or []
            items = items if isinstance(items, list) else [items]
            return JobStatus("completed", outcomes=[self._redacted(_action_outcome(item)) for item in items])
        failure = result.get("failure") or {}
        reason = failure.get("reason")
        final = "cancelled" if reason == "workflowCancelled" else "failed"
        return JobStatus(
            final,
            self._vendor_text(reason),
            self._vendor_text(failure.get("message") or result.get("message")),
        )

    def _vendor_text(self, text: Any) -> str | None:
        """A message from the vendor, redacted then shortened (it travels in trigger events and XCom)."""
        return None if text is None else _short(self.redact(str(text)))

    def wait_for_job(
        self,
        handle: Mapping[str, Any],
        *,
        poll_interval: float = 5.0,
        timeout: float = 3600.0,
        fail_outside_working_hours: bool = False,
    ) -> JobStatus:
        """
        Poll a job until it is done (the loop for non-deferrable use); return its final status.

        A job held ``outsideWorkingHours`` is logged as such each time its message changes, and waited for
        unless ``fail_outside_working_hours`` is set.

        :param handle: what :meth:`synchronize` returned.
        :param poll_interval: seconds between checks.
        :param timeout: seconds to wait in all.
        :param fail_outside_working_hours: raise at once when the job is held outside working hours.
        :raises LinkMsgVendorError: when the timeout passes first, with the job's last state.
        """
        deadline = time.monotonic() + timeout
        last = None
        while True:
            status = self.check_job(handle)
            if status.done:
                return status
            if status.outside_working_hours and fail_outside_working_hours:
                raise LinkMsgVendorError(
                    f"the synchronization is held outside the account's working hours: {status.message}. It "
                    "starts when they open; a retry reconnects to it.",
                    vendor=self.vendor,
                    code=status.reason,
                )
            if status.describe() != last:
                last = status.describe()
                log = self.log.warning if status.outside_working_hours else self.log.info
                log("Linked API synchronization is %s", last)
            if time.monotonic() + poll_interval > deadline:
                raise LinkMsgVendorError(
                    f"synchronization not done after {timeout:.0f} s; it is {last}. A task retry "
                    "reconnects to the same job.",
                    vendor=self.vendor,
                )
            time.sleep(poll_interval)

    def cancel_job(self, handle: Mapping[str, Any]) -> bool:
        """
        Cancel a job's unfinished workflows; returns whether any was cancelled.

        The seed API has no cancel: its result links are left to finish (returns ``False``).
        """
        if handle.get("kind") != "workflows":
            return False
        cancelled = False
        for workflow_id in handle["jobs"]:
            data = self.request("DELETE", f"/workflows/{workflow_id}").data or {}
            cancelled = bool((data.get("result") or {}).get("cancelled")) or cancelled
        return cancelled

    # ---- retrieval -----------------------------------------------------------------------------------
    def to_message(
        self, raw: Mapping[str, Any], *, person: Person, account_id: str, include_raw: bool = False
    ) -> Message:
        """
        Normalize one vendor message: ``sender: us`` is outbound; the conversation id is the person URL.

        :param raw: ``{"id", "sender", "text", "time", "threadId"?}`` as the API returns it.
        :param person: whose conversation it is.
        :param account_id: the record's account id.
        :param include_raw: keep ``raw`` in the record.
        """
        api = self.__dict__.get("api")  # the generation, if a call already resolved it (no lookup here)
        route = {"seed": "POST /account/conversations.get", "current": "POST /conversations/poll"}.get(
            api, "POST conversations.get or /conversations/poll"
        )
        parse(schema.Message, raw, vendor=self.vendor, route=route, prefix="messages[]")
        outbound = raw.get("sender") == "us"
        return Message(
            vendor=self.vendor,
            account_id=account_id,
            conversation_id=person.conversation_id,
            message_id=str(raw["id"]),
            sent_at=to_utc_iso(raw["time"]),
            direction="outbound" if outbound else "inbound",
            sender_id=None if outbound else person.url,
            text=raw.get("text") or "",
            channel=RECORD_CHANNELS[person.channel],  # type: ignore[arg-type]
            raw=dict(raw) if include_raw else None,
        )

    def get_messages(
        self,
        persons: Iterable[Person | tuple[Person, str | None]],
        *,
        batch_size: int = 100,
        result_handling: str | None = None,
    ) -> Iterator[PersonMessages]:
        """
        Read messages of synchronized conversations, one :class:`PersonMessages` per person.

        Persons go ``batch_size`` to a call: the seed's ``conversations.get`` (``long`` by default, as the
        seed advises) or ``/conversations/poll``. A person whose conversation is not synchronized comes
        back with ``error`` set; on the current API, which fails a whole batch for it, the unsynced persons
        named in the error are set aside and the rest re-read (splitting the batch when none is named).

        :param persons: persons (as :func:`parse_person` takes them), or ``(person, since)`` pairs (``since``
            ISO-8601 or ``None``).
        :param batch_size: persons per call.
        :param result_handling: seed API only: ``long`` (default) or ``reslink``.
        """
        mode = self.result_handling(result_handling, "long")
        pairs = [p if isinstance(p, tuple) else (p, None) for p in persons]
        since = {
            parse_person(p, field=f"persons[{i}]"): _since_param(s, "since") for i, (p, s) in enumerate(pairs)
        }
        people = list(since)
        for batch in _batches(people, batch_size):
            if self.api == "seed":
                yield from self._seed_get(batch, since, mode)
            else:
                yield from self._poll(batch, since)

    def _seed_get(
        self, batch: Sequence[Person], since: Mapping[Person, str | None], mode: ResultHandling
    ) -> Iterator[PersonMessages]:
        body = self._seed_call(
            "/account/conversations.get", self._seed_body(batch, since), mode, idempotent=True
        )
        deadline = time.monotonic() + self.long_poll_timeout
        while body.get("status") == "processing":
            if time.monotonic() > deadline:
                raise LinkMsgVendorError(
                    f"conversations.get still processing after {self.long_poll_timeout:.0f} s",
                    vendor=self.vendor,
                    endpoint="/account/conversations.get",
                )
            time.sleep(0.2)
            body = self.request("GET", self._result_link(body["process"].get("resultLink"))).data or {}
            if body.get("status") == "error":
                raise self._seed_failure(body, "/account/results")
        answered = dict(self._seed_items(body.get("completion") or {}))
        for person in batch:
            result = answered.get(person)
            if result is None:
                yield PersonMessages(person, since.get(person), error="missing", message="not in the answer")
            elif result.get("success"):
                messages = (result.get("data") or {}).get("messages") or []
                yield PersonMessages(person, since.get(person), messages)
            else:
                err = result.get("error") or {}
                error = self._vendor_text(err.get("errorType") or err.get("type") or "unknown")
                yield PersonMessages(
                    person, since.get(person), error=error, message=self._vendor_text(err.get("message"))
                )

    def _poll(self, batch: Sequence[Person], since: Mapping[Person, str | None]) -> Iterator[PersonMessages]:
        body = []
        for p in batch:
            item = {"personUrl": p.url, "type": p.channel}
            if since.get(p):
                item["since"] = since[p]
            body.append(item)
        try:
            data = self.request("POST", "/conversations/poll", json_body=body).data or {}
            route = "POST /conversations/poll"
            result = parse(schema.PollAnswer, data, vendor=self.vendor, route=route).get("result")
        except LinkMsgError as exc:
            if exc.code not in NOT_SYNCED_ERRORS:
                raise
            yield from self._poll_unsynced(batch, since, exc)
            return
        answered = {
            Person(normalize_person_url(item["personUrl"]), item.get("type", "st")): item
            for item in result or []
        }
        for person in batch:
            item = answered.get(person)
            if item is None:
                yield PersonMessages(person, since.get(person), error="missing", message="not in the answer")
            else:
                yield PersonMessages(person, since.get(person), list(item.get("messages") or []))

    def _poll_unsynced(
        self, batch: Sequence[Person], since: Mapping[Person, str | None], exc: LinkMsgError
    ) -> Iterator[PersonMessages]:
        """Split a batch that failed with ``conversationsNotSynced`` into the unsynced and the rest."""
        if len(batch) == 1:
            yield PersonMessages(batch[0], since.get(batch[0]), error=exc.code, message=exc.detail)
            return
        named = [p for p in batch if re.search(re.escape(p.url) + r"(?![\w%/,.-])", exc.detail)]
        if named and len(named) < len(batch):
            for p in named:
                yield PersonMessages(p, since.get(p), error=exc.code, message="conversation not synced")
            yield from self._poll([p for p in batch if p not in named], since)
            return
        if named:  # every person was named
            for p in named:
                yield PersonMessages(p, since.get(p), error=exc.code, message="conversation not synced")
            return
        half = len(batch) // 2
        yield from self._poll(batch[:half], since)
        yield from self._poll(batch[half:], since)


def _outcome(person: Person, success: Any, error: Mapping[str, Any] | None) -> SyncOutcome:
    if success:
        return SyncOutcome(person.url, person.channel, "synced")
    error = error or {}
    code = error.get("errorType") or error.get("type") or "unknown"
    status = "not_found" if code == "personNotFound" else "failed"
    return SyncOutcome(person.url, person.channel, status, code, error.get("message"))


def _action_outcome(item: Mapping[str, Any]) -> SyncOutcome:
    label = item.get("label")
    if not isinstance(label, str) or ":" not in label:
        raise LinkMsgResponseError(
            f"a workflow completion item has no person label: {_short(str(item))}", vendor="linkedapi"
        )
    return _outcome(Person.from_key(label), item.get("success"), item.get("error"))


def _combined(statuses: list[JobStatus], outcomes: list[SyncOutcome]) -> JobStatus:
    """One state for a job of several parts: failed, cancelled, pending, running, else completed."""
    for state in ("failed", "cancelled", "pending", "running"):
        found = [s for s in statuses if s.state == state]
        if found:
            worst = next((s for s in found if s.outside_working_hours), found[0])
            return JobStatus(state, worst.reason, worst.message)
    return JobStatus("completed", outcomes=outcomes + [o for s in statuses for o in s.outcomes])
