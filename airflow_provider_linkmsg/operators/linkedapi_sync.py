"""
Linked API's synchronization operator: start a job for the persons not yet known synced, wait for it.

Linked API only serves messages of conversations that were *synchronized* first, a slow asynchronous job.
:class:`LinkedApiSyncConversationsOperator` starts that job and waits for it in the triggerer. State under
the staging root: ``_state/linkedapi-sync/<account>.json`` (persons known synced or not found) and, when
Airflow offers no ``task_state_store``, ``_state/linkedapi-jobs/<task run>.json`` (the job a sync task
started; :class:`~airflow_provider_linkmsg.io.task_state.TaskStateStore`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError, LinkMsgVendorError
from airflow_provider_linkmsg.operators.labels import MapLabel, short_list
from airflow_provider_linkmsg.operators.lineage import LineageMixin, inbox_name
from airflow_provider_linkmsg.records import to_utc_iso

# The hook, the trigger, state and the checks are imported where they are used: DAG files import this module.
if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

    from airflow_provider_linkmsg.hooks.linkedapi import JobStatus, LinkedApiHook, Person, SyncOutcome
    from airflow_provider_linkmsg.io.task_state import TaskStateStore

VENDOR = "linkedapi"
#: recorded statuses that need no synchronization job (unless ``resync``)
SETTLED = ("synced", "not_found")
HANDLE_KEY = "linkedapi_sync_job"
#: set just before a paid start call, so a try that never hears back tells the next one
INTENT_KEY = "linkedapi_sync_starting"
#: the try that deferred last; a resume in another try holds a stale event (Airflow 3.0 keeps it for the retry)
DEFERRED_TRY_KEY = "linkedapi_sync_deferred_try"
_WORKING_HOURS_POLICIES = ("wait", "fail")


def person_list(value: Any) -> Any:
    """A person list, also from a template rendered to text (``"['https://...']"``)."""
    from airflow_provider_linkmsg.validation import check_persons

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
        from airflow_provider_linkmsg.io.staging import safe_name, to_path
        from airflow_provider_linkmsg.io.state import JsonState

        path = to_path(root, conn_id) / "_state" / f"{VENDOR}-sync" / f"{safe_name(account)}.json"
        self.state = JsonState(path)

    def load(self) -> dict[str, dict[str, Any]]:
        """``{person key: {"status": "synced" | "not_found", "at": ISO}}``."""
        return self.state.load().get("persons", {})

    def update(self, outcomes: Iterable[SyncOutcome] = (), forget: Iterable[Person] = ()) -> None:
        """Record synced and not-found outcomes, and forget persons found not synced (or failed)."""
        from airflow_provider_linkmsg.hooks.linkedapi import Person

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


class LinkedApiSyncConversationsOperator(MapLabel, LineageMixin, BaseOperator):
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
        linkedapi_conn_id: str = "linkedapi_default",
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
        super().__init__(**self.with_template(kwargs))
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

    def default_map_label(self) -> str:
        """The persons of a task mapped over persons (the first two, and how many more)."""
        return short_list(self.persons, "persons") if isinstance(self.persons, list | tuple) else ""

    @cached_property
    def hook(self) -> LinkedApiHook:
        from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook

        return LinkedApiHook(self.linkedapi_conn_id)

    @cached_property  # rendered and checked once, in execute
    def root(self) -> ObjectStoragePath:
        from airflow_provider_linkmsg.io.staging import staging_root

        return staging_root(self.staging_path, self.staging_conn_id)

    def _synced(self) -> SyncedPersons:
        return SyncedPersons(self.root, self.account_id or self.hook.account_id, self.staging_conn_id)

    # ---- the job handle, kept across retries ----------------------------------------------------------
    def _store(self, context: Context) -> TaskStateStore:
        from airflow_provider_linkmsg.io.task_state import TaskStateStore

        return TaskStateStore(context, self.root, folder=f"{VENDOR}-jobs", conn_id=self.staging_conn_id)

    def _state(self, context: Context, key: str, value: Any = None, *, delete: bool = False) -> Any:
        """Read, set or delete ``key`` in the task run's state (``task_state_store`` or a state file)."""
        store = self._store(context)
        if delete:
            store.delete(key)
        elif value is not None:
            store.set(key, value)
        else:
            return store.get(key)
        return None

    def _load_handle(self, context: Context) -> dict[str, Any] | None:
        return self._state(context, HANDLE_KEY)

    def _save_handle(self, context: Context, handle: dict[str, Any]) -> None:
        self._handle = handle
        self._state(context, HANDLE_KEY, handle)
        self._state(context, INTENT_KEY, delete=True)  # the job's own handle says it all now

    def _clear_handle(self, context: Context) -> None:
        self._handle = None
        self._state(context, HANDLE_KEY, delete=True)
        self._state(context, DEFERRED_TRY_KEY, delete=True)

    # ---- execution -------------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_linkmsg.hooks.linkedapi import JobStatus, parse_persons
        from airflow_provider_linkmsg.validation import check_bools, check_seconds

        check_bools(self, "resync", "deferrable", vendor=VENDOR)
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
        from airflow_provider_linkmsg.hooks.linkedapi import SyncOutcome, parse_persons

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
        from airflow_provider_linkmsg.triggers.linkedapi import LinkedApiJobTrigger
        from airflow_provider_linkmsg.utils import try_number

        if handle.get("kind") == "done":
            return self._finish(context, self.hook.check_job(handle))
        if self.deferrable:
            self._state(context, DEFERRED_TRY_KEY, try_number(context))
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
        from airflow_provider_linkmsg.hooks.linkedapi import JobStatus
        from airflow_provider_linkmsg.utils import resumed_with_an_earlier_try_event

        deferred_try = self._state(context, DEFERRED_TRY_KEY)
        if resumed_with_an_earlier_try_event(context, deferred_try):
            self.log.info(
                "Resumed with the trigger event of try %s: this retry reconnects afresh", deferred_try
            )
            return self.execute(context)
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
        from airflow_provider_linkmsg.hooks.linkedapi import Person, parse_persons

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
        inbox = inbox_name(self.account_id or self.hook.account_id)  # what the retrieve of the account reads
        self.record_lineage([], [("vendor", VENDOR, self.hook.conn_params.base_url, inbox)])
        return result

    def on_kill(self) -> None:
        if self._handle:
            try:
                self.hook.cancel_job(self._handle)
            except Exception as exc:
                self.log.warning("Could not cancel the Linked API job: %s", exc)
