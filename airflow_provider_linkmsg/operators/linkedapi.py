"""
Operators for Linked API: synchronize conversations (deferrable), then retrieve their messages incrementally.

Linked API only serves messages of conversations that were *synchronized* first, a slow asynchronous job.
:class:`LinkedApiSyncConversationsOperator` starts that job for the persons not yet known to be synced and
waits for it in the triggerer; :class:`LinkedApiRetrieveMessagesOperator` then reads each person's
messages since its watermark, stages them, and advances the watermarks only after the staged run is
durable. Both work on the seed's API and the current one (the connection's ``api`` extra).

State under the staging root: ``_state/linkedapi/<account>.json`` (watermarks, one per conversation),
``_state/linkedapi-sync/<account>.json`` (persons known synced or not found) and, when Airflow offers no
``task_state_store``, ``_state/linkedapi-jobs/<task run>.json`` (the job a sync task started).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError, LinkMsgVendorError
from airflow_provider_linkmsg.hooks.linkedapi import (
    RECORD_CHANNELS,
    JobStatus,
    LinkedApiHook,
    Person,
    PersonMessages,
    SyncOutcome,
    normalize_person_url,
    parse_persons,
)
from airflow_provider_linkmsg.io.staging import safe_name, staging_root, to_path
from airflow_provider_linkmsg.io.state import JsonState
from airflow_provider_linkmsg.operators.inbox import (
    BaseInboxRetrieveOperator,
    Conversation,
    InboxRetrieval,
    ReadWindow,
    read_window,
)
from airflow_provider_linkmsg.records import Message, to_utc_iso
from airflow_provider_linkmsg.triggers.linkedapi import LinkedApiJobTrigger
from airflow_provider_linkmsg.utils import task_run_id
from airflow_provider_linkmsg.validation import check_inbox_arguments, check_persons, check_seconds

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

VENDOR = "linkedapi"
#: recorded statuses that need no synchronization job (unless ``resync``)
SETTLED = ("synced", "not_found")
HANDLE_KEY = "linkedapi_sync_job"
#: set just before a paid start call, so a try that never hears back tells the next one
INTENT_KEY = "linkedapi_sync_starting"
_WORKING_HOURS_POLICIES = ("wait", "fail")


def person_list(value: Any) -> Any:
    """A person list, also from a template rendered to text (``"['https://...']"``)."""
    return check_persons(value)


def _now() -> str:
    return to_utc_iso(datetime.now(UTC))


class SyncedPersons:
    """
    Which persons of an account are known synced (or not found): ``_state/linkedapi-sync/<account>.json``.

    :param root: staging root.
    :param account: the account id.
    :param conn_id: connection of the store when ``root`` is a string.
    """

    def __init__(self, root: str, account: str, conn_id: str | None = None) -> None:
        path = to_path(root, conn_id) / "_state" / f"{VENDOR}-sync" / f"{safe_name(account)}.json"
        self.state = JsonState(path)

    def load(self) -> dict[str, dict[str, Any]]:
        """``{person key: {"status": "synced" | "not_found", "at": ISO}}``."""
        return self.state.load().get("persons", {})

    def update(self, outcomes: Iterable[SyncOutcome] = (), forget: Iterable[Person] = ()) -> None:
        """Record synced and not-found outcomes, and forget persons found not synced (or failed)."""

        def change(document: dict[str, Any]) -> None:
            persons = document.setdefault("persons", {})
            for outcome in outcomes:
                key = Person(outcome.person, outcome.channel).key
                if outcome.status == "failed":
                    persons.pop(key, None)
                else:
                    persons[key] = {"status": outcome.status, "at": _now()}
            for person in forget:
                persons.pop(person.key, None)

        self.state.update(change)  # read, change, replace under a lock: concurrent tasks lose nothing


def check_settings(hook: LinkedApiHook, result_handling: Any, batch_size: Any, field: str) -> None:
    """Check the result handling, the batch size and the connection's ``api`` (no call is made)."""
    hook.result_handling(result_handling, "long")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise LinkMsgValidationError(
            f"{field} must be a positive integer (persons per call), got {batch_size!r}",
            field=field,
            vendor=VENDOR,
        )
    _ = hook.api


class LinkedApiSyncConversationsOperator(BaseOperator):
    """
    Synchronize the conversations of a list of persons (standard and Sales Navigator) with Linked API.

    Persons already recorded as synced, or reported not found, are skipped (``resync=True`` tries them
    all again). The job's handle is
    kept in the task's ``task_state_store`` (or a state file), so a retry reconnects to the job it started
    instead of starting another. While the job runs the task defers (``LinkedApiJobTrigger``), or polls
    when ``deferrable=False``. A job held outside the account's working hours is logged as such and waited
    for (``outside_working_hours="wait"``) or fails the task at once (``"fail"``).

    :param persons: LinkedIn URLs, or dicts ``{"person": URL, "channel": "standard" | "salesNavigator"}``.
    :param linkedapi_conn_id: Airflow connection of type ``linkedapi``.
    :param resync: synchronize persons already recorded as synced too.
    :param result_handling: seed API only: ``reslink`` (default) or ``long`` (the start call holds the
        worker until the work is done).
    :param batch_size: persons per synchronize call or workflow.
    :param poll_interval: seconds between job checks.
    :param timeout: seconds to wait for the job.
    :param outside_working_hours: ``wait`` or ``fail``.
    :param lost_answer_wait: seconds a retry watches the persons of a job whose start answer was lost
        before it pays for another (Linked API cannot tell whether it started one).
    :param staging_path: root of the state files (default: :func:`default_staging_root`).
    :param staging_conn_id: connection of the staging store.
    :param account_id: key of the account's state (default: a digest of the identification token).
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :return: ``{"synced": [persons], "not_found": [urls], "failed": [{"person", "channel", "error"}],
        "already_synced": [persons], "api_calls": n}``; persons as ``{"person": URL, "channel"}``, the form
        the retrieve operator takes (``persons=sync.output["synced"]``).
    """

    template_fields: Sequence[str] = (
        "persons",
        "linkedapi_conn_id",
        "staging_path",
        "account_id",
        "result_handling",
    )
    template_fields_renderers = {"persons": "json"}
    ui_color = "#0a66c2"
    ui_fgcolor = "#ffffff"

    def __init__(
        self,
        *,
        persons: Any,
        linkedapi_conn_id: str = LinkedApiHook.default_conn_name,
        resync: bool = False,
        result_handling: str | None = None,
        batch_size: int = 100,
        poll_interval: float = 5.0,
        timeout: float = 3600.0,
        outside_working_hours: str = "wait",
        lost_answer_wait: float = 300.0,
        staging_path: str | None = None,
        staging_conn_id: str | None = None,
        account_id: str | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.lost_answer_wait = lost_answer_wait
        self.persons = persons
        self.linkedapi_conn_id = linkedapi_conn_id
        self.resync = resync
        self.result_handling = result_handling
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.outside_working_hours = outside_working_hours
        self.staging_path = staging_path
        self.staging_conn_id = staging_conn_id
        self.account_id = account_id
        self.deferrable = deferrable
        self._handle: dict[str, Any] | None = None

    @cached_property
    def hook(self) -> LinkedApiHook:
        return LinkedApiHook(self.linkedapi_conn_id)

    @cached_property  # rendered and checked once, in execute
    def root(self) -> ObjectStoragePath:
        return staging_root(self.staging_path, self.staging_conn_id)

    def _synced(self) -> SyncedPersons:
        return SyncedPersons(self.root, self.account_id or self.hook.account_id, self.staging_conn_id)

    # ---- the job handle, kept across retries ----------------------------------------------------------
    def _handle_file(self, context: Context) -> JsonState:
        name = f"{safe_name(task_run_id(context), max_length=160)}.json"
        return JsonState(to_path(self.root, self.staging_conn_id) / "_state" / f"{VENDOR}-jobs" / name)

    def _state(self, context: Context, key: str, value: Any = None, *, delete: bool = False) -> Any:
        """Read, set or delete ``key`` in the task's ``task_state_store``, else in the task run's state file."""
        store = context.get("task_state_store")
        if store is not None:
            if delete:
                store.delete(key)
            elif value is not None:
                store.set(key, value)
            return store.get(key) if value is None and not delete else None
        state = self._handle_file(context)
        data = state.load()
        if delete or value is not None:
            data.pop(key, None)
            if value is not None:
                data[key] = value
            state.save(data)
            return None
        return data.get(key)

    def _load_handle(self, context: Context) -> dict[str, Any] | None:
        return self._state(context, HANDLE_KEY)

    def _save_handle(self, context: Context, handle: dict[str, Any]) -> None:
        self._handle = handle
        self._state(context, HANDLE_KEY, handle)
        self._state(context, INTENT_KEY, delete=True)  # the job's own handle says it all now

    def _clear_handle(self, context: Context) -> None:
        self._handle = None
        self._state(context, HANDLE_KEY, delete=True)

    # ---- execution -------------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        persons = parse_persons(person_list(self.persons))
        self.poll_interval = check_seconds(self.poll_interval, field="poll_interval", vendor=VENDOR)
        self.timeout = check_seconds(self.timeout, field="timeout", vendor=VENDOR)
        check_settings(self.hook, self.result_handling, self.batch_size, "batch_size")
        if self.outside_working_hours not in _WORKING_HOURS_POLICIES:
            raise LinkMsgValidationError(
                f"outside_working_hours is {self.outside_working_hours!r}; use 'wait' or 'fail'",
                field="outside_working_hours",
            )
        handle = self._load_handle(context)
        if handle:
            status = self.hook.check_job(handle)
            if status.state == "completed":
                self.log.info("The job this task started earlier has completed; using its result")
                return self._finish(context, status)
            if not status.done:
                self.log.info("Reconnecting to the job this task started earlier (%s)", status.describe())
                self._handle = handle
                return self._wait(context, handle)
            self.log.warning("The job this task started earlier is %s; starting a new one", status.describe())
        recovered, unconfirmed = self._after_lost_answer(context)
        known = self._synced().load()
        # synced persons need no job, and a URL the vendor found to be no person will not become one
        todo = [
            p
            for p in persons
            if (self.resync or known.get(p.key, {}).get("status") not in SETTLED) and p not in unconfirmed
        ]
        self.log.info("%d of %d person(s) to synchronize", len(todo), len(persons))
        if not todo:
            return self._finish(context, JobStatus("completed", outcomes=recovered))
        self._state(context, INTENT_KEY, {"persons": [p.spec() for p in todo], "at": time.time()})
        handle = self.hook.synchronize(
            todo,
            result_handling=self.result_handling,
            batch_size=self.batch_size,
            on_started=lambda started: self._save_handle(context, started),  # kept batch by batch
        )
        self._save_handle(context, handle)
        return self._wait(context, handle)

    def _after_lost_answer(self, context: Context) -> tuple[list[SyncOutcome], list[Person]]:
        """
        An earlier try asked for a job but never heard back (it died in the call, or the answer was cut
        off): the job may be running, and Linked API neither de-duplicates nor lists jobs. Watch its
        persons (free reads) for up to ``lost_answer_wait`` seconds. If some show up synchronized, the job
        ran: return their outcomes, and the others, for which this try pays no second job (the next run
        does, if they still need one). If none does, no job ran: return nothing, and all are synchronized.
        """
        intent = self._state(context, INTENT_KEY)
        if not intent:
            return [], []
        pending = parse_persons(intent["persons"])
        self.log.warning(
            "An earlier try asked Linked API to synchronize %d person(s) and never got the answer; watching "
            "them for up to %.0f s before paying for another job",
            len(pending),
            self.lost_answer_wait,
        )
        deadline, now = time.monotonic() + self.lost_answer_wait, to_utc_iso(datetime.now(UTC))
        seen_synced: list[Person] = []
        while True:
            results = self.hook.get_messages([(p, now) for p in pending], batch_size=self.batch_size)
            synced = [r.person for r in results if r.error is None]
            settled = seen_synced and not synced  # the job ran, and nothing more came of it since
            seen_synced += synced
            pending = [p for p in pending if p not in synced]
            if not pending or settled or time.monotonic() + self.poll_interval > deadline:
                break
            time.sleep(self.poll_interval)
        outcomes = [SyncOutcome(p.url, p.channel, "synced") for p in seen_synced]
        self._synced().update(outcomes)
        self._state(context, INTENT_KEY, delete=True)
        if not seen_synced:
            self.log.info("None of them is synchronized: the earlier job never started")
            return [], []
        self.log.info(
            "The earlier job ran (%d synchronized); no second job for the %d still unsynchronized "
            "(not LinkedIn persons, or failed): the next run tries them again",
            len(seen_synced),
            len(pending),
        )
        return outcomes, pending

    def _wait(self, context: Context, handle: dict[str, Any]) -> dict[str, Any]:
        if handle.get("kind") == "done":
            return self._finish(context, self.hook.check_job(handle))
        if self.deferrable:
            self.defer(
                trigger=LinkedApiJobTrigger(
                    linkedapi_conn_id=self.linkedapi_conn_id,
                    handle=handle,
                    end_time=time.time() + self.timeout,
                    poll_interval=self.poll_interval,
                    outside_working_hours=self.outside_working_hours,
                ),
                method_name="execute_complete",
            )
        status = self.hook.wait_for_job(
            handle,
            poll_interval=self.poll_interval,
            timeout=self.timeout,
            fail_outside_working_hours=self.outside_working_hours == "fail",
        )
        return self._end(context, status)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: finish on success, else raise with what the job reported."""
        if not isinstance(event, dict) or "status" not in event:
            raise LinkMsgVendorError(f"the Linked API trigger sent no usable event: {event!r}", vendor=VENDOR)
        self._handle = event.get("handle")
        status = event["status"]
        job = JobStatus.from_dict(event["job"]) if event.get("job") else None
        if status == "success" and job is not None:
            return self._finish(context, job)
        if status in ("failed", "cancelled") and job is not None:
            return self._end(context, job)
        if status == "outside_working_hours":
            raise LinkMsgVendorError(
                f"the synchronization is held outside the account's working hours: {event.get('message')}. "
                "It starts when they open; a retry of this task reconnects to it.",
                vendor=VENDOR,
            )
        if status == "timeout":
            last = job.describe() if job else "unknown"
            raise LinkMsgVendorError(
                f"synchronization not done after {self.timeout:.0f} s; it is {last}. A retry of this task "
                "reconnects to the same job.",
                vendor=VENDOR,
            )
        raise LinkMsgVendorError(
            f"checking the synchronization failed: {event.get('message')}", vendor=VENDOR
        )

    def _end(self, context: Context, status: JobStatus) -> dict[str, Any]:
        if status.state == "completed":
            return self._finish(context, status)
        self._clear_handle(context)
        error = self.hook.error_class(0, status.reason)
        raise error(f"the synchronization job {status.describe()}", vendor=VENDOR, code=status.reason)

    def _finish(self, context: Context, status: JobStatus) -> dict[str, Any]:
        synced = self._synced()
        synced.update(status.outcomes)
        self._clear_handle(context)
        done = {Person(o.person, o.channel): o for o in status.outcomes}
        known = synced.load()
        rest = [p for p in parse_persons(person_list(self.persons)) if p not in done]
        result = {
            "synced": [p.spec() for p, o in done.items() if o.status == "synced"],
            "not_found": [p.url for p, o in done.items() if o.status == "not_found"]
            + [p.url for p in rest if known.get(p.key, {}).get("status") == "not_found"],
            "failed": [{**p.spec(), "error": o.error} for p, o in done.items() if o.status == "failed"],
            "already_synced": [p.spec() for p in rest if known.get(p.key, {}).get("status") == "synced"],
            "not_started": [p.spec() for p in rest if known.get(p.key, {}).get("status") not in SETTLED],
            "api_calls": self.hook.api_calls,
        }
        if result["not_started"]:
            self.log.warning(
                "%d person(s) were not synchronized: an earlier try stopped before starting their batch; "
                "the next run synchronizes them",
                len(result["not_started"]),
            )
        if result["not_found"]:
            self.log.warning("Not LinkedIn persons (personNotFound): %s", ", ".join(result["not_found"]))
        for failure in result["failed"]:
            self.log.warning("Could not synchronize %s: %s", failure["person"], failure["error"])
        self.log.info(
            "Synchronized %d, not found %d, failed %d, already synced %d",
            *(len(result[k]) for k in ("synced", "not_found", "failed", "already_synced")),
        )
        return result

    def on_kill(self) -> None:
        if self._handle:
            try:
                self.hook.cancel_job(self._handle)
            except Exception as exc:
                self.log.warning("Could not cancel the Linked API job: %s", exc)


class _NotRead(Exception):
    """A person whose messages could not be read (not synchronized, not found ...): reported, not fatal."""

    def __init__(self, result: PersonMessages) -> None:
        super().__init__(f"{result.error}: {result.message or ''}".rstrip(": "))
        self.result = result


class _BatchReader:
    """
    Serve the inbox engine's one-conversation-at-a-time reads from batched calls.

    The first read of a batch fetches the whole batch with one ``conversations.get`` or
    ``/conversations/poll`` call (under a lock, so concurrent readers of the same batch wait for it);
    each read then takes its own person's share. Persons that could not be read are sorted into
    ``not_synced``, ``not_found`` and ``failed``.

    :param operator: the retrieve operator (hook, batch size, result handling, raw).
    :param persons: the persons to read, in the order the engine reads them.
    :param account: the records' account id.
    """

    def __init__(
        self, operator: LinkedApiRetrieveMessagesOperator, persons: list[Person], account: str
    ) -> None:
        self.op = operator
        self.persons = persons
        self.account = account
        size = operator.effective_page_size
        self.batches = [persons[i : i + size] for i in range(0, len(persons), size)]
        self.batch_of = {p.conversation_id: i // size for i, p in enumerate(persons)}
        self.person_of = {p.conversation_id: p for p in persons}
        self.locks = [threading.Lock() for _ in self.batches]
        self.fetched: dict[int, BaseException | None] = {}
        self.results: dict[str, PersonMessages] = {}
        #: the ``since`` of a conversation id (from its watermark), set once the engine exists
        self.since: Any = lambda conversation_id: None
        self.not_synced: list[Person] = []
        self.not_found: list[Person] = []
        self.failed: list[Person] = []
        self.read: list[Person] = []

    def conversations(self) -> list[Conversation]:
        return [
            Conversation(p.conversation_id, channel=RECORD_CHANNELS[p.channel], info={"person": p.key})
            for p in self.persons
        ]

    def _fetch(self, index: int) -> None:
        pairs = [(p, self.since(p.conversation_id)) for p in self.batches[index]]
        for result in self.op.hook.get_messages(
            pairs, batch_size=len(pairs), result_handling=self.op.result_handling
        ):
            self.results[result.person.conversation_id] = result

    def read_conversation(self, conversation: Conversation, window: ReadWindow) -> list[Message]:
        index = self.batch_of[conversation.id]
        with self.locks[index]:
            if index not in self.fetched:
                try:
                    self._fetch(index)
                    self.fetched[index] = None
                except BaseException as exc:  # every reader of this batch gets the same error, no refetch
                    self.fetched[index] = exc
            if self.fetched[index] is not None:  # the batch's call failed past its retries
                self.failed.append(self.person_of[conversation.id])
                raise self.fetched[index]
            result = self.results.pop(conversation.id)
        if result.error is not None:
            group = self.not_synced if result.not_synced else self.failed
            group = self.not_found if result.error == "personNotFound" else group
            group.append(result.person)
            raise _NotRead(result)
        try:
            messages = [
                self.op.hook.to_message(
                    raw, person=result.person, account_id=self.account, include_raw=self.op.include_raw
                )
                for raw in result.messages
            ]
        except Exception:
            self.failed.append(result.person)  # a malformed answer fails the task; none of it is staged
            raise
        self.read.append(result.person)
        return messages


class LinkedApiRetrieveMessagesOperator(BaseInboxRetrieveOperator):
    """
    Stage the messages of each person's conversation that are new since the last run.

    Runs on the shared inbox engine (:class:`~airflow_provider_linkmsg.operators.inbox.InboxRetrieval`):
    each person's read starts ``overlap_seconds`` before its watermark and drops what was staged before;
    the records are staged with a manifest and the watermarks committed only after. Persons go
    ``page_size`` to one ``conversations.get`` or ``/conversations/poll`` call. Messages become
    :class:`~airflow_provider_linkmsg.records.Message` records (``sender: us`` is outbound) whose
    conversation id is the person URL (``#sales_navigator`` appended on that channel).

    Persons recorded as not found (by the sync operator) are skipped. A person whose conversation is not
    synchronized is reported and skipped, or, with ``sync_missing``, synchronized first and then read (the
    task waits for that job on the worker).

    :param persons: LinkedIn URLs, or dicts ``{"person": URL, "channel": "standard" | "salesNavigator"}``.
    :param linkedapi_conn_id: Airflow connection of type ``linkedapi``.
    :param sync_missing: synchronize unsynchronized persons first, then read them.
    :param sync_timeout: seconds to wait for that synchronization.
    :param poll_interval: seconds between its checks.
    :param result_handling: seed API only: ``long`` (default) or ``reslink``.
    :param page_size: persons per get/poll call (100).
    :param account_id: the records' ``account_id`` and the state key (default: a digest of the
        connection's identification token).
    :param conversation_ids: only the persons with these conversation ids (URLs).
    :param fail_on_error: fail the task when persons failed for another reason than not being
        synchronized or not found (after staging the others).

    The other arguments are those of :class:`~airflow_provider_linkmsg.operators.inbox.BaseInboxRetrieveOperator`.

    :return: (XCom) ``{"manifest", "records", "persons", "read", "not_found": [urls], "not_synced": [urls],
        "failed": [urls], "api_calls", ...}``
    """

    vendor = VENDOR
    template_fields: Sequence[str] = (
        *BaseInboxRetrieveOperator.template_fields,
        "persons",
        "linkedapi_conn_id",
        "result_handling",
    )
    template_fields_renderers = {"persons": "json"}

    def __init__(
        self,
        *,
        persons: Any,
        linkedapi_conn_id: str = LinkedApiHook.default_conn_name,
        sync_missing: bool = False,
        sync_timeout: float = 3600.0,
        poll_interval: float = 5.0,
        result_handling: str | None = None,
        overlap_seconds: float = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(overlap_seconds=overlap_seconds, **kwargs)
        self.persons = persons
        self.linkedapi_conn_id = linkedapi_conn_id
        self.sync_missing = sync_missing
        self.sync_timeout = sync_timeout
        self.poll_interval = poll_interval
        self.result_handling = result_handling

    @cached_property
    def hook(self) -> LinkedApiHook:
        return LinkedApiHook(self.linkedapi_conn_id)

    # ---- the vendor's part of the inbox engine --------------------------------------------------------
    def default_account_id(self) -> str | None:
        return self.hook.account_id

    def check_account_id(self, account_id: Any) -> str:
        return str(account_id)

    def check_conversation_id(self, conversation_id: Any, field: str) -> str:
        url, _, channel = str(conversation_id).partition("#")
        return normalize_person_url(url, field=field) + (f"#{channel}" if channel else "")

    def check_inputs(self) -> None:
        check_inbox_arguments(self)
        self.poll_interval = check_seconds(self.poll_interval, field="poll_interval", vendor=VENDOR)
        self.sync_timeout = check_seconds(self.sync_timeout, field="sync_timeout", vendor=VENDOR)
        check_settings(self.hook, self.result_handling, self.effective_page_size, "page_size")

    def usage(self) -> dict[str, float]:
        return {"api_calls": self.hook.api_calls, "credits": 0}

    # ---- execution -------------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        persons = parse_persons(person_list(self.persons))
        account, conversation_ids = self._check_common()
        if conversation_ids is not None:
            persons = [p for p in persons if p.conversation_id in set(conversation_ids)]
        synced_state = SyncedPersons(self._root, account, self.staging_conn_id)
        known = synced_state.load()
        not_found = [p for p in persons if known.get(p.key, {}).get("status") == "not_found"]
        # persons known synced first: an unsynced one (which fails a whole poll) then shares no batch with them
        to_read = sorted(
            (p for p in persons if p not in not_found),
            key=lambda p: known.get(p.key, {}).get("status") != "synced",
        )
        reader, result = self._run(context, account, to_read)
        read, failed, not_synced = reader.read, reader.failed, reader.not_synced
        not_found += reader.not_found
        if not_synced and self.sync_missing:
            status = self._sync_first(not_synced)
            synced_state.update(status.outcomes)
            now_synced = [Person(o.person, o.channel) for o in status.outcomes if o.status == "synced"]
            not_found += [Person(o.person, o.channel) for o in status.outcomes if o.status == "not_found"]
            failed += [Person(o.person, o.channel) for o in status.outcomes if o.status == "failed"]
            # the same staging run: the second pass carries over what the first staged
            second, result = self._run(context, account, now_synced)
            read, failed, not_synced = read + second.read, failed + second.failed, second.not_synced
            not_found += second.not_found
        synced_state.update(
            [SyncOutcome(p.url, p.channel, "synced") for p in read]
            + [SyncOutcome(p.url, p.channel, "not_found") for p in not_found],
            forget=not_synced,
        )
        if not_synced:
            self.log.warning(
                "Not synchronized, skipped (run LinkedApiSyncConversationsOperator or set sync_missing): %s",
                ", ".join(p.url for p in not_synced),
            )
        if not_found:
            self.log.warning("Not LinkedIn persons, skipped: %s", ", ".join(p.url for p in not_found))
        if not failed:
            result.pop("first_error", None)  # the engine's, about a person reported below as not synced
        result.update(
            persons=len(persons),
            read=len(read),
            not_found=[p.url for p in not_found],
            not_synced=[p.url for p in not_synced],
            failed=[p.url for p in failed],
        )
        if failed and self.fail_on_error:
            raise LinkMsgVendorError(
                f"{len(failed)} person(s) could not be read: {', '.join(p.url for p in failed[:5])}. The "
                f"others are staged in {result['manifest']}; a retry reads the failed ones again. "
                f"First error: {result.get('first_error') or 'see the log'}",
                vendor=VENDOR,
            )
        return result

    @cached_property  # rendered and checked once, in execute
    def _root(self) -> ObjectStoragePath:
        return staging_root(self.staging_path, self.staging_conn_id)

    def _run(self, context: Context, account: str, persons: list[Person]) -> tuple[_BatchReader, dict]:
        """One pass of the inbox engine over ``persons``: the reader (who was read) and the XCom value."""
        reader = _BatchReader(self, persons, account)
        retrieval = InboxRetrieval(
            vendor=VENDOR,
            account_id=account,
            root=self._root,
            run_id=task_run_id(context),
            conn_id=self.staging_conn_id,
            include_raw=self.include_raw,
            full_refresh=self.full_refresh,
            overlap_seconds=self.overlap_seconds,
            max_workers=int(self.max_workers),
            fail_on_error=False,  # unsynced and not-found persons are reported, not errors
            log=self.log,
        )
        watermarks = retrieval.store.all()
        reader.since = lambda cid: (
            None if self.full_refresh else read_window(watermarks.get(cid), self.overlap_seconds).floor
        )
        result = retrieval.run(
            list_conversations=reader.conversations,
            read_conversation=reader.read_conversation,
            usage=self.usage,
        )
        return reader, result

    def _sync_first(self, persons: list[Person]) -> JobStatus:
        self.log.info("Synchronizing %d unsynchronized person(s) first", len(persons))
        handle = self.hook.synchronize(persons, batch_size=self.effective_page_size)
        status = self.hook.wait_for_job(handle, poll_interval=self.poll_interval, timeout=self.sync_timeout)
        if status.state != "completed":
            error = self.hook.error_class(0, status.reason)
            raise error(
                f"synchronizing first: the job {status.describe()}", vendor=VENDOR, code=status.reason
            )
        return status
