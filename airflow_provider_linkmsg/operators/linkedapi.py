"""
Operators for Linked API: synchronize conversations (deferrable), then retrieve their messages incrementally.

Linked API only serves messages of conversations that were *synchronized* first, a slow asynchronous job:
:class:`LinkedApiSyncConversationsOperator` (in :mod:`.linkedapi_sync`) starts it and waits in the
triggerer; :class:`LinkedApiRetrieveMessagesOperator` then reads each person's messages since its
watermark on the shared inbox engine, stages them, and advances the watermarks only after the staged run
is durable. Both work on the seed's API and the current one (the connection's ``api`` extra).

State under the staging root: ``_state/linkedapi/<account>.json`` (watermarks, one per conversation),
``_state/linkedapi-sync/<account>.json`` (persons known synced or not found) and, when Airflow offers no
``task_state_store``, ``_state/linkedapi-jobs/<task run>.json`` (the job a sync task started).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError, LinkMsgVendorError
from airflow_provider_linkmsg.operators.inbox import BaseInboxRetrieveOperator
from airflow_provider_linkmsg.operators.linkedapi_sync import (  # noqa: F401 - re-exported
    HANDLE_KEY,
    INTENT_KEY,
    SETTLED,
    VENDOR,
    LinkedApiSyncConversationsOperator,
    SyncedPersons,
    check_settings,
    person_list,
)

# The hook, its inbox adapter, staging and the checks are imported where they are used: DAG files import
# this module.
if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, ObjectStoragePath

    from airflow_provider_linkmsg.hooks.inbox.linkedapi import LinkedApiInbox
    from airflow_provider_linkmsg.hooks.linkedapi import JobStatus, LinkedApiHook, Person
    from airflow_provider_linkmsg.io.lease import Lease

__all__ = ["LinkedApiRetrieveMessagesOperator", "LinkedApiSyncConversationsOperator", "person_list"]


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
        linkedapi_conn_id: str = "linkedapi_default",
        sync_missing: bool = False,
        sync_timeout: float = 3600.0,
        poll_interval: float = 5.0,
        result_handling: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.persons = persons
        self.linkedapi_conn_id = linkedapi_conn_id
        self.sync_missing = sync_missing
        self.sync_timeout = sync_timeout
        self.poll_interval = poll_interval
        self.result_handling = result_handling
        self._lease: Lease | None = None

    @cached_property
    def hook(self) -> LinkedApiHook:
        from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook

        return LinkedApiHook(self.linkedapi_conn_id)

    # ---- the vendor's part of the inbox engine --------------------------------------------------------
    def default_account_id(self) -> str | None:
        return self.hook.account_id

    def check_account_id(self, account_id: Any) -> str:
        return str(account_id)

    def check_conversation_id(self, conversation_id: Any, field: str) -> str:
        from airflow_provider_linkmsg.hooks.linkedapi import normalize_person_url

        url, _, channel = str(conversation_id).partition("#")
        return normalize_person_url(url, field=field) + (f"#{channel}" if channel else "")

    def check_inputs(self) -> None:
        from airflow_provider_linkmsg.validation import check_bools, check_inbox_arguments, check_seconds

        check_inbox_arguments(self)
        check_bools(self, "sync_missing", vendor=VENDOR)
        if self.read_mode == "counted":
            raise LinkMsgValidationError(
                "read_mode='counted' needs the vendor's message count, which Linked API does not give: "
                "use 'full' (the default) or the opt-in 'window'",
                field="read_mode",
                vendor=VENDOR,
            )
        self.poll_interval = check_seconds(self.poll_interval, field="poll_interval", vendor=VENDOR)
        self.sync_timeout = check_seconds(self.sync_timeout, field="sync_timeout", vendor=VENDOR)
        check_settings(self.hook, self.result_handling, self.effective_page_size, "page_size")

    # ---- execution -------------------------------------------------------------------------------------
    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_linkmsg.hooks.linkedapi import parse_persons
        from airflow_provider_linkmsg.operators.links import push_inbox_links

        persons = parse_persons(person_list(self.persons))
        account, conversation_ids = self._check_common()
        with self.lease(context, account, self._root) as self._lease:
            result = self._retrieve(context, account, conversation_ids, persons)
        self.record_retrieve_lineage(account, result)
        push_inbox_links(self, context, result)
        return {**result, "state_key": self.consumer(context)}

    def _retrieve(
        self, context: Context, account: str, conversation_ids: list[str] | None, persons: list[Person]
    ) -> dict[str, Any]:
        from airflow_provider_linkmsg.hooks.linkedapi import Person, SyncOutcome

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
        from airflow_provider_linkmsg.io.staging import staging_root

        return staging_root(self.staging_path, self.staging_conn_id)

    def _run(self, context: Context, account: str, persons: list[Person]) -> tuple[LinkedApiInbox, dict]:
        """One pass of the inbox engine over ``persons``: the reader (who was read) and the XCom value."""
        from airflow_provider_linkmsg.hooks.inbox.linkedapi import LinkedApiInbox

        reader = LinkedApiInbox(
            self.hook,
            persons,
            account,
            batch_size=self.effective_page_size,
            result_handling=self.result_handling,
            include_raw=self.include_raw,
        )
        # unsynced and not-found persons are reported, not errors
        retrieval = self.retrieval(context, account, self._root, self._lease, fail_on_error=False)
        windowed = not self.full_refresh and retrieval.read_mode == "window"
        # the engine's trusted watermarks; by default (read_mode "full") each person is read in full
        reader.since = lambda cid: retrieval.window(cid).floor if windowed else None
        result = retrieval.run(
            list_conversations=reader.list_conversations,
            read_conversation=reader.read_conversation,
            usage=reader.usage,
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
