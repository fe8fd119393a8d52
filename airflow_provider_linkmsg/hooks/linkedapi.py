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

Each generation's calls and answers live in its adapter beside the hook, with their async twins:
:class:`~airflow_provider_linkmsg.hooks.linkedapi_seed.SeedApi` (``hook.seed``) and
:class:`~airflow_provider_linkmsg.hooks.linkedapi_current.CurrentApi` (``hook.current``); the vocabulary
(:class:`Person`, :class:`JobStatus` ...) in :mod:`airflow_provider_linkmsg.hooks.linkedapi_model`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from functools import cached_property
from typing import Any

from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgBudgetExceededError,
    LinkMsgError,
    LinkMsgValidationError,
    LinkMsgVendorError,
)
from airflow_provider_linkmsg.hooks.base import LinkMsgHook, _short
from airflow_provider_linkmsg.hooks.forms import ConnectionFormMixin
from airflow_provider_linkmsg.hooks.linkedapi_current import CurrentApi
from airflow_provider_linkmsg.hooks.linkedapi_model import (
    APIS,
    AUTH_CODES,
    CHANNEL_ALIASES,
    NOT_SYNCED_ERRORS,
    PLAN_CODES,
    RECORD_CHANNELS,
    RESULT_HANDLING,
    SEED_LISTS,
    TERMINAL_STATES,
    ApiGeneration,
    JobState,
    JobStatus,
    Person,
    PersonMessages,
    ResultHandling,
    SyncOutcome,
    batches,
    combined,
    normalize_person_url,
    parse_person,
    parse_persons,
    since_param,
)
from airflow_provider_linkmsg.hooks.linkedapi_seed import SeedApi
from airflow_provider_linkmsg.records import Message, to_utc_iso
from airflow_provider_linkmsg.schemas import linkedapi as schema

__all__ = [  # the names this module has always offered (the vocabulary now lives in linkedapi_model)
    "APIS",
    "CHANNEL_ALIASES",
    "NOT_SYNCED_ERRORS",
    "RECORD_CHANNELS",
    "RESULT_HANDLING",
    "SEED_LISTS",
    "TERMINAL_STATES",
    "ApiGeneration",
    "JobState",
    "JobStatus",
    "LinkedApiHook",
    "Person",
    "PersonMessages",
    "ResultHandling",
    "SyncOutcome",
    "normalize_person_url",
    "parse_person",
    "parse_persons",
]


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

    # ---- the two API generations ---------------------------------------------------------------------
    @cached_property
    def seed(self) -> SeedApi:
        """Seed 003's calls (``conversations.*``, result links) over this hook's transport."""
        return SeedApi(self)

    @cached_property
    def current(self) -> CurrentApi:
        """The current API's calls (``/workflows``, ``/conversations/poll``) over this hook's transport."""
        return CurrentApi(self)

    # ---- errors --------------------------------------------------------------------------------------
    def describe_error(self, status: int, body: Any, text: str) -> tuple[str, str | None]:
        """Both envelopes: ``{"error": {"type", "message"}}`` and the seed's ``{"errorType", "message"}``."""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            err = body["error"]
            code = err.get("type") or err.get("errorType")
            return _short(self.redact(str(err.get("message") or code or f"HTTP {status}"))), code
        return super().describe_error(status, body, text)

    def error_class(self, status: int, code: str | None) -> type[LinkMsgError]:
        if code in AUTH_CODES:
            return LinkMsgAuthError
        if code in PLAN_CODES:
            return LinkMsgBudgetExceededError
        return super().error_class(status, code)

    def vendor_text(self, text: Any) -> str | None:
        """A message from the vendor, redacted then shortened (it travels in trigger events and XCom)."""
        return None if text is None else _short(self.redact(str(text)))

    def redacted_outcome(self, outcome: SyncOutcome) -> SyncOutcome:
        """``outcome`` with the vendor's error code and message passed through the redactor."""
        return replace(
            outcome, error=self.vendor_text(outcome.error), message=self.vendor_text(outcome.message)
        )

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

        for batch in batches(people, batch_size):
            if self.api == "current":
                jobs.append(self.current.start(batch))
            else:
                link, done = self.seed.start(batch, mode)
                if link is not None:
                    jobs.append(link)
                outcomes.extend(o.to_dict() for o in done)
            if on_started is not None:
                on_started(handle())
        return handle()

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
        check = self.current.check if kind == "workflows" else self.seed.check
        return combined([check(job) for job in handle["jobs"]], outcomes)

    async def acheck_job(self, handle: Mapping[str, Any]) -> JobStatus:
        """
        The async twin of :meth:`check_job` (for the trigger).

        :param handle: what :meth:`synchronize` returned.
        """
        kind, outcomes = self._job_kind(handle)
        if kind == "done":
            return JobStatus("completed", outcomes=outcomes)
        check = self.current.acheck if kind == "workflows" else self.seed.acheck
        return combined([await check(job) for job in handle["jobs"]], outcomes)

    def cancel_job(self, handle: Mapping[str, Any]) -> bool:
        """
        Cancel a job's unfinished workflows; returns whether any was cancelled.

        The seed API has no cancel: its result links are left to finish (returns ``False``).
        """
        if handle.get("kind") != "workflows":
            return False
        return any([self.current.cancel(workflow_id) for workflow_id in handle["jobs"]])

    async def acancel_job(self, handle: Mapping[str, Any]) -> bool:
        """The async twin of :meth:`cancel_job` (for the trigger's ``on_kill``)."""
        if handle.get("kind") != "workflows":
            return False
        return any([await self.current.acancel(workflow_id) for workflow_id in handle["jobs"]])

    def _job_kind(self, handle: Mapping[str, Any]) -> tuple[str, list[SyncOutcome]]:
        kind = handle.get("kind")
        if kind not in ("done", "result_links", "workflows"):
            raise LinkMsgValidationError(
                f"not a Linked API job handle: {handle!r}", field="handle", vendor=self.vendor
            )
        return kind, [SyncOutcome(**o) for o in handle.get("outcomes") or []]

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
        self.check(schema.Message, raw, route=route, prefix="messages[]")
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
            parse_person(p, field=f"persons[{i}]"): since_param(s, "since") for i, (p, s) in enumerate(pairs)
        }
        people = list(since)
        for batch in batches(people, batch_size):
            if self.api == "seed":
                yield from self.seed.get(batch, since, mode)
            else:
                yield from self.current.poll(batch, since)
