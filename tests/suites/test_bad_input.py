"""
Bad input: a table of wrong arguments and connections across every operator and hook, each with the error
it must give. Every one is refused before any call reaches the vendor (the sandbox counts none) and
before anything is exported.

Local validation raises :class:`LinkMsgValidationError` (an ``AirflowFailException``: Airflow fails the
task at once instead of retrying bad input) with ``field`` naming the argument and a message saying what
to fix; a budget a request would exceed raises :class:`LinkMsgBudgetExceededError`; a missing key
:class:`LinkMsgAuthError`; an unknown connection id Airflow's own ``AirflowNotFoundException``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowNotFoundException

from airflow_provider_linkmsg.exceptions import (
    LinkMsgAuthError,
    LinkMsgBudgetExceededError,
    LinkMsgValidationError,
)
from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook
from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook
from airflow_provider_linkmsg.hooks.linkup import LinkupHook
from airflow_provider_linkmsg.io.staging import StagingWriter
from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from airflow_provider_linkmsg.operators.export import (
    LinkMsgExportToFilesOperator,
    LinkMsgExportToSqlOperator,
)
from airflow_provider_linkmsg.operators.koneksi import (
    KoneksiRequestMessageGenerationOperator,
    KoneksiRetrieveMessagesOperator,
)
from airflow_provider_linkmsg.operators.linkedapi import (
    LinkedApiRetrieveMessagesOperator,
    LinkedApiSyncConversationsOperator,
)
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from airflow_provider_linkmsg.records import Message
from airflow_provider_linkmsg.sandbox import Sandbox
from airflow_provider_linkmsg.sensors.koneksi import KoneksiGenerationSensor
from tests.compat import outlet_event_accessors
from tests.fixtures.koneksi import make_campaign
from tests.fixtures.suites import vendor_calls

SIZES = {
    "connectsafely": {"accounts": 1, "conversations": 2, "messages": 2},
    "linkup": {"accounts": 1, "conversations": 2, "messages": 2},
    "linkedapi": {"persons": 2, "not_found": 0},
    "koneksi": {"leads": 2},
}
CS_URN = "urn:li:msg_conversation:(urn:li:fsd_profile:ACoAAB1,2-abc)"
REQUEST_ID = "a8bd1fec-94dd-4d6a-b54d-2109994748ac"


@pytest.fixture(scope="module")
def _sandbox():
    with Sandbox(seed=8, sizes=SIZES) as sandbox:
        yield sandbox


@dataclass
class Env:
    """What the table's calls need: valid values to spoil one at a time, and a way to spoil connections."""

    sandbox: Sandbox
    staging: str
    out: str
    monkeypatch: Any

    def context(self, task_id: str = "task") -> dict[str, Any]:
        ti = SimpleNamespace(dag_id="bad_input", task_id=task_id, run_id="run-1", map_index=-1)
        return {"ti": ti, "run_id": "run-1", "outlet_events": outlet_event_accessors()}

    def account(self, vendor: str) -> str:
        return self.sandbox.truth(vendor)["accounts"][0]["id"]

    @property
    def persons(self) -> list[str]:
        return [p["person"] for p in self.sandbox.truth("linkedapi")["accounts"]["acc1"]["persons"]]

    @property
    def leads(self) -> list[dict[str, Any]]:
        return self.sandbox.truth("koneksi")["leads"]

    def campaign(self, **changes: Any) -> dict[str, Any]:
        campaign = {**make_campaign(self.sandbox), **changes}
        return {k: v for k, v in campaign.items() if v is not None}

    def conn(self, vendor: str, *, drop: tuple[str, ...] = (), **changes: Any) -> str:
        """A copy of ``<vendor>_default`` with fields or extras changed (or dropped); returns its id."""
        conn = json.loads(json.dumps(self.sandbox.connections()[f"{vendor}_default"]))
        for key, value in changes.items():
            if key in ("password", "conn_type", "host"):
                conn[key] = value
            else:
                conn["extra"][key] = value
        for key in drop:
            conn["extra"].pop(key, None)
        digest = hashlib.sha256((json.dumps(changes, sort_keys=True) + str(drop)).encode()).hexdigest()[:8]
        conn_id = f"bad_{vendor}_{digest}"
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))
        return conn_id

    def sqlite(self) -> str:
        conn_id = "bad_input_warehouse"
        url = {"conn_type": "sqlite", "host": str(Path(self.out).parent / "warehouse.db")}
        self.monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(url))
        return conn_id

    def manifest(self) -> dict[str, Any]:
        """A small staged run to export."""
        with StagingWriter(self.staging, vendor="linkup", record_type="message", run_id="staged") as writer:
            writer.write(
                Message(
                    vendor="linkup",
                    account_id="acc_1",
                    conversation_id=CS_URN,
                    message_id="m1",
                    sent_at="2026-01-01T00:00:00.000000Z",
                    direction="inbound",
                )
            )
        return writer.close().summary()


@pytest.fixture
def env(_sandbox, tmp_path, monkeypatch) -> Env:
    for key, value in _sandbox.env().items():
        monkeypatch.setenv(key, value)
    _sandbox.reset_stats()
    return Env(_sandbox, str(tmp_path / "staging"), str(tmp_path / "out"), monkeypatch)


# ---- the table --------------------------------------------------------------------------------------------
def cs(e: Env, **kwargs: Any) -> Any:
    kwargs.setdefault("account_id", e.account("connectsafely"))
    kwargs.setdefault("staging_path", e.staging)
    return ConnectSafelyRetrieveMessagesOperator(task_id="cs", **kwargs).execute(e.context())


def linkup(e: Env, **kwargs: Any) -> Any:
    kwargs.setdefault("account_id", e.account("linkup"))
    return LinkupRetrieveMessagesOperator(task_id="lk", staging_path=e.staging, **kwargs).execute(e.context())


def la_sync(e: Env, **kwargs: Any) -> Any:
    kwargs.setdefault("persons", e.persons)
    op = LinkedApiSyncConversationsOperator(
        task_id="sync", staging_path=e.staging, deferrable=False, **kwargs
    )
    return op.execute(e.context("sync"))


def la_retrieve(e: Env, **kwargs: Any) -> Any:
    kwargs.setdefault("persons", e.persons)
    op = LinkedApiRetrieveMessagesOperator(task_id="retrieve", staging_path=e.staging, **kwargs)
    return op.execute(e.context("retrieve"))


def kn_request(e: Env, **kwargs: Any) -> Any:
    kwargs.setdefault("campaign", e.campaign())
    kwargs.setdefault("leads", e.leads)
    op = KoneksiRequestMessageGenerationOperator(task_id="request", staging_path=e.staging, **kwargs)
    return op.execute(e.context("request"))


def kn_retrieve(e: Env, **kwargs: Any) -> Any:
    op = KoneksiRetrieveMessagesOperator(
        task_id="retrieve", secure_request_id=REQUEST_ID, staging_path=e.staging, **kwargs
    )
    return op.execute(e.context("retrieve"))


def kn_sensor(e: Env, **kwargs: Any) -> Any:
    return KoneksiGenerationSensor(task_id="wait", secure_request_id=REQUEST_ID, **kwargs).execute(
        e.context()
    )


def to_files(e: Env, **kwargs: Any) -> Any:
    kwargs.setdefault("manifests", e.manifest())
    kwargs.setdefault("destination", e.out)
    return LinkMsgExportToFilesOperator(task_id="files", **kwargs).execute(e.context())


def to_sql(e: Env, **kwargs: Any) -> Any:
    kwargs.setdefault("manifests", e.manifest())
    kwargs.setdefault("conn_id", e.sqlite())
    return LinkMsgExportToSqlOperator(task_id="sql", **kwargs).execute(e.context())


V = LinkMsgValidationError


def bad(call, error, fragment, field=None, *, id: str, marks=()):
    return pytest.param(call, error, fragment, field, id=id, marks=marks)


TABLE = [
    # ids, URNs and counts of the inbox operators
    bad(lambda e: cs(e, account_id="acc_123"), V, "24 hex digits", "account_id", id="cs-account-id"),
    bad(lambda e: cs(e, conversation_ids=["conv-1"]), V, "urn:li:msg_conversation", "conversation_ids[0]", id="cs-conversation-urn"),
    bad(lambda e: cs(e, conversation_ids=42), V, "must be a list", "conversation_ids", id="cs-conversation-ids-not-a-list"),
    bad(lambda e: cs(e, page_size=0), V, "from 1 to 100", "page_size", id="cs-page-size-0"),
    bad(lambda e: cs(e, overlap_seconds=-1), V, "at least 0", "overlap_seconds", id="cs-overlap-negative"),
    bad(lambda e: cs(e, max_workers=0), V, "at least 1", "max_workers", id="cs-max-workers-0"),
    bad(lambda e: linkup(e, account_id="12345"), V, "acc_", "account_id", id="linkup-account-id"),
    bad(lambda e: linkup(e, conversation_ids=["urn:li:salesNav_thread:1"]), V, "not a conversation URN", "conversation_ids[0]", id="linkup-sales-navigator-thread"),
    bad(lambda e: linkup(e, page_size=500), V, "from 1 to 100", "page_size", id="linkup-page-size-500"),
    bad(lambda e: linkup(e, max_credits=-1), V, "0 or more", "max_credits", id="linkup-budget-negative"),
    bad(lambda e: linkup(e, max_credits="lots"), V, "number of credits", "max_credits", id="linkup-budget-not-a-number"),
    bad(lambda e: la_retrieve(e, conversation_ids=["https://example.com/in/x"]), V, "not a LinkedIn profile URL", "conversation_ids[0]", id="linkedapi-retrieve-conversation-url"),
    bad(lambda e: la_retrieve(e, page_size=0), V, "positive integer", "page_size", id="linkedapi-retrieve-page-size-0"),
    # Linked API persons and settings
    bad(lambda e: la_sync(e, persons=[]), V, "is empty", "persons", id="linkedapi-persons-empty"),
    bad(lambda e: la_sync(e, persons="https://www.linkedin.com/in/ada"), V, "must be a list", "persons", id="linkedapi-persons-a-string"),
    bad(lambda e: la_sync(e, persons=["https://www.linkedin.com/company/acme"]), V, "not a LinkedIn profile URL", "persons[0]", id="linkedapi-person-company-url"),
    bad(lambda e: la_sync(e, persons=[{"person": e.persons[0], "channel": "email"}]), V, "'standard' or 'salesNavigator'", "persons[0].channel", id="linkedapi-person-channel"),
    bad(lambda e: la_sync(e, result_handling="sometimes"), V, "'reslink'", "result_handling", id="linkedapi-result-handling"),
    bad(lambda e: la_sync(e, batch_size=0), V, "positive integer", "batch_size", id="linkedapi-batch-size-0"),
    bad(lambda e: la_sync(e, outside_working_hours="maybe"), V, "'wait' or 'fail'", "outside_working_hours", id="linkedapi-working-hours-policy"),
    bad(lambda e: la_sync(e, linkedapi_conn_id=e.conn("linkedapi", api="v3")), V, "use 'seed'", "api", id="linkedapi-api-value"),
    bad(lambda e: la_sync(e, linkedapi_conn_id=e.conn("linkedapi", drop=("identification_token",))), LinkMsgAuthError, "identification_token", id="linkedapi-no-identification-token"),
    # Koneksi requests: validated with the vendor's rules before the paid call
    bad(lambda e: kn_request(e, campaign=e.campaign(proposition_company_name=None)), V, "required", "proposition_company_name", id="koneksi-missing-campaign-field"),
    bad(lambda e: kn_request(e, campaign=e.campaign(proposition_company_url="acme.com")), V, "HTTP or HTTPS URL", "proposition_company_url", id="koneksi-company-url-without-scheme"),
    bad(lambda e: kn_request(e, completion_notification_url="javascript:alert(1)"), V, "HTTP or HTTPS URL", "completion_notification_url", id="koneksi-notification-url"),
    bad(lambda e: kn_request(e, campaign=e.campaign(message_sequence=[{"step": 0, "messageType": "connection_request"}])), V, "starting at 1", "message_sequence[0].step", id="koneksi-step-0"),
    bad(lambda e: kn_request(e, campaign=e.campaign(message_sequence=[{"step": 1, "messageType": "fax"}])), V, "must be one of", "message_sequence[0].messageType", id="koneksi-message-type"),
    bad(lambda e: kn_request(e, campaign=e.campaign(message_sequence=[{"step": 1, "messageType": "share_material"}])), V, "share_material", "material_link", id="koneksi-share-material-without-link"),
    bad(lambda e: kn_request(e, leads=[]), V, "at least one lead", "lead_data", id="koneksi-no-leads"),
    bad(lambda e: kn_request(e, leads=[{k: v for k, v in e.leads[0].items() if k != "linkedin"}]), V, "required", "lead_data[0].linkedin", id="koneksi-lead-without-linkedin"),
    bad(lambda e: kn_request(e, leads=[e.leads[0], e.leads[0]]), V, "duplicates", "lead_data[1].external_prospect_id", id="koneksi-duplicate-lead"),
    bad(lambda e: kn_request(e, leads=42), V, "must be a list", "lead_data", id="koneksi-leads-not-a-list"),
    bad(lambda e: kn_request(e, leads="/nonexistent/leads.json"), V, "does not exist", "lead_data", id="koneksi-leads-file-missing"),
    bad(lambda e: kn_request(e, campaign="[1, 2]"), V, "must be a dict", "campaign", id="koneksi-campaign-not-a-dict"),
    bad(lambda e: kn_request(e, max_messages=3), LinkMsgBudgetExceededError, "max_messages=3", id="koneksi-over-budget"),
    bad(lambda e: kn_request(e, max_messages="ten"), V, "max_messages", "max_messages", id="koneksi-budget-not-a-number"),
    bad(lambda e: kn_request(e, koneksi_conn_id=e.conn("koneksi", auth_style="oauth")), V, "'api_key' or 'legacy'", "auth_style", id="koneksi-auth-style"),
    bad(lambda e: KoneksiRetrieveMessagesOperator(task_id="r", secure_request_id="123", staging_path=e.staging).execute(e.context()), V, "UUID v4", "secure_request_id", id="koneksi-retrieve-request-id"),
    bad(lambda e: KoneksiGenerationSensor(task_id="w", secure_request_id="", deferrable=False, timeout=1).execute(e.context()), V, "UUID v4", "secure_request_id", id="koneksi-sensor-request-id"),
    bad(lambda e: KoneksiGenerationSensor(task_id="w", secure_request_id=REQUEST_ID, max_failed_share=2, deferrable=False, timeout=1).execute(e.context()), V, "max_failed_share", "max_failed_share", id="koneksi-sensor-failed-share-above-1"),
    # hooks
    bad(lambda e: list(ConnectSafelyHook().iter_messages(CS_URN, since="yesterday")), V, "epoch milliseconds", "since", id="connectsafely-hook-since-not-a-time"),
    bad(lambda e: list(ConnectSafelyHook().iter_conversations(count=0)), V, "from 1 to 100", "count", id="connectsafely-hook-count-0"),
    bad(lambda e: ConnectSafelyHook().get_account_status("acc_123"), V, "24 hex digits", "account_id", id="connectsafely-hook-account-id"),
    bad(lambda e: list(LinkupHook().iter_messages(e.account("linkup"), profile_url="https://twitter.com/ada")), V, "LinkedIn profile URL", "profile_url", id="linkup-hook-profile-url"),
    bad(lambda e: LinkupHook(max_credits=-3), V, "0 or more", "max_credits", id="linkup-hook-budget-negative"),
    bad(lambda e: list(LinkupHook().list_accounts(limit=0)), V, "from 1 to 500", "limit", id="linkup-hook-limit-0"),
    bad(lambda e: list(LinkedApiHook().get_messages([(e.persons[0], "yesterday")])), V, "since", "since", id="linkedapi-hook-since-not-a-date"),
    # connections
    bad(lambda e: cs(e, connectsafely_conn_id="no_such_connection"), AirflowNotFoundException, "no_such_connection", id="connection-missing"),
    bad(lambda e: kn_request(e, koneksi_conn_id="no_such_connection"), AirflowNotFoundException, "no_such_connection", id="koneksi-connection-missing"),
    bad(lambda e: list(LinkupHook(e.conn("linkup", password="")).list_accounts()), LinkMsgAuthError, "no API key", id="connection-without-key"),
    bad(lambda e: list(LinkupHook(e.conn("linkup", base_url="ftp://example.com")).list_accounts()), V, "http:// or https://", "base_url", id="connection-base-url"),
    bad(lambda e: list(LinkupHook(e.conn("linkup", max_retries="many")).list_accounts()), V, "must be a number", "max_retries", id="connection-max-retries"),
    bad(lambda e: cs(e, connectsafely_conn_id="linkup_default"), V, "linkup", id="connectsafely-given-a-linkup-connection"),
    bad(lambda e: linkup(e, linkup_conn_id="connectsafely_default"), V, "connectsafely", id="linkup-given-a-connectsafely-connection"),
    bad(lambda e: kn_request(e, koneksi_conn_id="connectsafely_default"), V, "connectsafely", id="koneksi-given-a-connectsafely-connection"),
    bad(lambda e: la_sync(e, linkedapi_conn_id="linkup_default"), V, "linkup", id="linkedapi-given-a-linkup-connection"),
    # staging
    bad(lambda e: cs(e, staging_path=str(Path(e.manifest()["manifest"]))), V, "staging_path", "staging_path", id="staging-path-is-a-file"),
    bad(lambda e: cs(e, staging_path="nosuchscheme://bucket/linkmsg"), V, "staging_path", "staging_path", id="staging-path-unknown-scheme"),
    # export
    bad(lambda e: to_files(e, file_format="xml"), V, "file_format", "file_format", id="export-format"),
    bad(lambda e: to_files(e, file_format="csv", compression="zstd"), V, "gzip", "compression", id="export-compression"),
    bad(lambda e: to_files(e, partition_date="yesterday"), V, "partition_date", "partition_date", id="export-partition-date"),
    bad(lambda e: to_files(e, manifests=[{"records": 3}]), V, "'manifest' or 'path'", "manifests", id="export-manifest-reference"),
    bad(lambda e: to_sql(e, messages_table="messages; DROP TABLE x"), V, "identifier", "messages_table", id="export-table-name"),
    bad(lambda e: to_sql(e, batch_size=0), V, "at least 1", "batch_size", id="export-batch-size-0"),
    bad(lambda e: to_sql(e, conn_id="no_such_connection"), AirflowNotFoundException, "no_such_connection", id="export-connection-missing"),
    bad(lambda e: to_sql(e, conn_id="linkup_default"), V, "linkup_default", id="export-connection-not-a-database"),
    # issue 14: whole-string patterns (a rendered Variable's trailing newline is not part of an id)
    bad(lambda e: cs(e, account_id=e.account("connectsafely") + "\n"), V, "24 hex digits", "account_id", id="cs-account-id-trailing-newline"),
    bad(lambda e: linkup(e, account_id=e.account("linkup") + "\n"), V, "acc_", "account_id", id="linkup-account-id-trailing-newline"),
    bad(lambda e: cs(e, conversation_ids=[CS_URN + "\n"]), V, "not a conversation URN", "conversation_ids[0]", id="cs-conversation-urn-trailing-newline"),
    bad(lambda e: linkup(e, conversation_ids=[CS_URN + "\n"]), V, "not a conversation URN", "conversation_ids[0]", id="linkup-conversation-urn-trailing-newline"),
    bad(lambda e: ConnectSafelyHook().get_account_status(e.account("connectsafely") + "\n"), V, "24 hex digits", "account_id", id="connectsafely-hook-account-id-trailing-newline"),
    bad(lambda e: KoneksiRetrieveMessagesOperator(task_id="r", secure_request_id=REQUEST_ID + "\nx", staging_path=e.staging).execute(e.context()), V, "UUID v4", "secure_request_id", id="koneksi-retrieve-request-id-two-lines"),
    # finite numbers in range
    bad(lambda e: linkup(e, max_credits="nan"), V, "number of credits", "max_credits", id="linkup-budget-nan"),
    bad(lambda e: linkup(e, max_credits="  \n"), V, "number of credits", "max_credits", id="linkup-budget-blank"),
    bad(lambda e: linkup(e, max_credits=""), V, "number of credits", "max_credits", id="linkup-budget-empty-text"),
    bad(lambda e: linkup(e, max_credits=float("inf")), V, "number of credits", "max_credits", id="linkup-budget-infinite"),
    bad(lambda e: linkup(e, max_credits=True), V, "number of credits", "max_credits", id="linkup-budget-true"),
    bad(lambda e: LinkupHook(max_credits=float("nan")), V, "finite", "max_credits", id="linkup-hook-budget-nan"),
    bad(lambda e: cs(e, overlap_seconds=float("nan")), V, "finite", "overlap_seconds", id="cs-overlap-nan"),
    bad(lambda e: cs(e, overlap_seconds=1e300), V, "at most", "overlap_seconds", id="cs-overlap-1e300"),
    bad(lambda e: linkup(e, overlap_seconds=float("inf")), V, "overlap_seconds", "overlap_seconds", id="linkup-overlap-infinite"),
    bad(lambda e: la_retrieve(e, overlap_seconds=float("nan")), V, "finite", "overlap_seconds", id="linkedapi-retrieve-overlap-nan"),
    bad(lambda e: cs(e, max_workers=1e9), V, "at most 64", "max_workers", id="cs-max-workers-1e9"),
    bad(lambda e: linkup(e, max_workers=2.5), V, "whole number", "max_workers", id="linkup-max-workers-fraction"),
    bad(lambda e: la_retrieve(e, max_workers=10_000), V, "at most 64", "max_workers", id="linkedapi-retrieve-max-workers-10000"),
    # integer page sizes
    bad(lambda e: cs(e, page_size="fifty"), V, "whole number", "page_size", id="cs-page-size-text"),
    bad(lambda e: linkup(e, page_size=2.5), V, "whole number", "page_size", id="linkup-page-size-fraction"),
    bad(lambda e: la_retrieve(e, page_size="a hundred"), V, "whole number", "page_size", id="linkedapi-retrieve-page-size-text"),
    bad(lambda e: linkup(e, page_size="  "), V, "whole number", "page_size", id="linkup-page-size-blank-text"),
    # real booleans from templated strings
    bad(lambda e: cs(e, full_refresh="no"), V, "true or false", "full_refresh", id="cs-full-refresh-no"),
    bad(lambda e: linkup(e, full_refresh="0"), V, "true or false", "full_refresh", id="linkup-full-refresh-zero"),
    bad(lambda e: linkup(e, include_raw="maybe"), V, "true or false", "include_raw", id="linkup-include-raw-maybe"),
    bad(lambda e: la_retrieve(e, fail_on_error="yes"), V, "true or false", "fail_on_error", id="linkedapi-retrieve-fail-on-error-yes"),
    bad(lambda e: to_files(e, include_raw="sure"), V, "true or false", "include_raw", id="export-include-raw-sure"),
    # every boolean argument, not only the inbox ones (adversarial review, F8)
    bad(lambda e: la_retrieve(e, sync_missing="nope"), V, "true or false", "sync_missing", id="linkedapi-retrieve-sync-missing-nope"),
    bad(lambda e: la_sync(e, resync="maybe"), V, "true or false", "resync", id="linkedapi-sync-resync-maybe"),
    bad(lambda e: LinkedApiSyncConversationsOperator(task_id="s", persons=e.persons, deferrable="later").execute(e.context()), V, "true or false", "deferrable", id="linkedapi-sync-deferrable-text"),
    bad(lambda e: kn_retrieve(e, allow_partial="yes"), V, "true or false", "allow_partial", id="koneksi-retrieve-allow-partial-yes"),
    bad(lambda e: kn_retrieve(e, include_raw="1"), V, "true or false", "include_raw", id="koneksi-retrieve-include-raw-1"),
    bad(lambda e: kn_sensor(e, deferrable="on"), V, "true or false", "deferrable", id="koneksi-sensor-deferrable-on"),
    bad(lambda e: kn_sensor(e, accept_partial_on_timeout="ok"), V, "true or false", "accept_partial_on_timeout", id="koneksi-sensor-accept-partial-ok"),
    bad(lambda e: to_sql(e, create_table="no"), V, "true or false", "create_table", id="export-sql-create-table-no"),
    # lists that are lists, and not empty where that makes a paid call useless
    bad(lambda e: cs(e, conversation_ids=[]), V, "empty list", "conversation_ids", id="cs-conversation-ids-empty"),
    bad(lambda e: linkup(e, conversation_ids=[]), V, "empty list", "conversation_ids", id="linkup-conversation-ids-empty"),
    bad(lambda e: la_retrieve(e, conversation_ids=[]), V, "empty list", "conversation_ids", id="linkedapi-retrieve-conversation-ids-empty"),
    bad(lambda e: linkup(e, conversation_ids={"a": 1}), V, "must be a list", "conversation_ids", id="linkup-conversation-ids-a-dict"),
    # Linked API persons and durations
    bad(lambda e: la_sync(e, persons=[None]), V, "each person", "persons[0]", id="linkedapi-person-none"),
    bad(lambda e: la_sync(e, persons=[e.persons[0], None]), V, "each person", "persons[1]", id="linkedapi-person-none-second"),
    bad(lambda e: la_retrieve(e, persons=[e.persons[0], 42]), V, "each person", "persons[1]", id="linkedapi-retrieve-person-a-number"),
    bad(lambda e: la_sync(e, persons=None), V, "must be a list", "persons", id="linkedapi-persons-none"),
    bad(lambda e: la_sync(e, persons="[not a list"), V, "neither JSON nor a Python literal", "persons", id="linkedapi-persons-bad-literal"),
    bad(lambda e: la_sync(e, poll_interval=-1), V, "greater than 0", "poll_interval", id="linkedapi-sync-poll-interval-negative"),
    bad(lambda e: la_sync(e, poll_interval=float("nan")), V, "finite", "poll_interval", id="linkedapi-sync-poll-interval-nan"),
    bad(lambda e: la_sync(e, timeout=0), V, "greater than 0", "timeout", id="linkedapi-sync-timeout-0"),
    bad(lambda e: la_retrieve(e, poll_interval=0), V, "greater than 0", "poll_interval", id="linkedapi-retrieve-poll-interval-0"),
    # Koneksi leads and budget
    bad(lambda e: kn_request(e, leads=[{**e.leads[0], "linkedin": "https://www.linkedin.com/company/acme"}]), V, "not a LinkedIn profile URL", "lead_data[0].linkedin", id="koneksi-lead-linkedin-company-url"),
    bad(lambda e: kn_request(e, leads=[{**e.leads[0], "linkedin": "https://twitter.com/ada"}]), V, "not a LinkedIn profile URL", "lead_data[0].linkedin", id="koneksi-lead-linkedin-twitter-url"),
    bad(lambda e: kn_request(e, leads=[{**e.leads[0], "first_name": {"given": "Ada"}}]), V, "must be text", "lead_data[0].first_name", id="koneksi-lead-first-name-a-dict"),
    bad(lambda e: kn_request(e, campaign=e.campaign(proposition_company_url="https://acme .com")), V, "holds a space", "proposition_company_url", id="koneksi-company-url-with-space"),
    bad(lambda e: kn_request(e, leads=[{**e.leads[0], "external_prospect_id": f"p{i}"} for i in range(20_000)]), V, "no max_messages", "max_messages", id="koneksi-20000-leads-without-budget"),
    bad(lambda e: kn_request(e, max_messages=2.9), V, "whole number", "max_messages", id="koneksi-budget-fraction"),
    bad(lambda e: kn_request(e, max_messages=True), V, "whole number", "max_messages", id="koneksi-budget-true"),
    bad(lambda e: kn_request(e, max_messages="nan"), V, "whole number", "max_messages", id="koneksi-budget-nan"),
    bad(lambda e: kn_request(e, leads=[{**e.leads[0], "external_prospect_id": 7}, {**e.leads[1], "external_prospect_id": 7}]), V, "duplicates", "lead_data[1].external_prospect_id", id="koneksi-duplicate-integer-lead-ids"),
    bad(lambda e: kn_request(e, leads=[{**e.leads[0], "external_prospect_id": 7}, {**e.leads[1], "external_prospect_id": "7"}]), V, "one type", "lead_data[1].external_prospect_id", id="koneksi-lead-ids-of-two-types"),
    bad(lambda e: kn_request(e, leads="[{bad python"), V, "neither JSON nor a Python literal", "lead_data", id="koneksi-leads-bad-literal"),
    bad(lambda e: kn_request(e, campaign="{'message_sequence': [}"), V, "neither JSON nor a Python literal", "campaign", id="koneksi-campaign-bad-literal"),
    # export
    bad(lambda e: to_files(e, partition_date="20260101"), V, "YYYY-MM-DD", "partition_date", id="export-partition-date-basic-form"),
    bad(lambda e: to_files(e, file_format="parquet", compression="rar"), V, "must be one of", "compression", id="export-parquet-compression-rar"),
    bad(lambda e: to_files(e, destination=""), V, "is empty", "destination", id="export-destination-empty"),
    bad(lambda e: to_files(e, destination="   "), V, "is empty", "destination", id="export-destination-blank"),
    # destinations that resolve against the worker's working directory (adversarial review, F7)
    bad(lambda e: to_files(e, destination="."), V, "relative path", "destination", id="export-destination-dot"),
    bad(lambda e: to_files(e, destination=".."), V, "relative path", "destination", id="export-destination-dotdot"),
    bad(lambda e: to_files(e, destination="out/dir"), V, "relative path", "destination", id="export-destination-relative"),
    bad(lambda e: to_files(e, destination=".\n"), V, "relative path", "destination", id="export-destination-dot-newline"),
    bad(lambda e: to_files(e, destination="s3:/bucket"), V, "relative path", "destination", id="export-destination-url-one-slash"),
    bad(lambda e: to_sql(e, batch_size=2.5), V, "whole number", "batch_size", id="export-sql-batch-size-fraction"),
    bad(lambda e: to_files(e, file_format="parquet", batch_size=2.5), V, "whole number", "batch_size", id="export-files-batch-size-fraction"),
    bad(lambda e: to_files(e, manifests="[not json"), V, "neither JSON nor a Python literal", "manifests", id="export-manifests-bad-literal"),
    bad(lambda e: to_sql(e, manifests="{'manifest': "), V, "neither JSON nor a Python literal", "manifests", id="export-sql-manifests-bad-literal"),
    bad(lambda e: to_files(e, manifests="/nonexistent/run/manifest.json"), V, "no staging manifest", "manifests", id="export-manifest-missing-file"),
    bad(lambda e: to_sql(e, manifests=[e.manifest(), {"manifest": "/nonexistent/run"}]), V, "no staging manifest", "manifests", id="export-sql-manifest-missing-in-list"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "fragment", "field"), TABLE)
def test_bad_input_is_refused_before_any_call(env, call, error, fragment, field):
    try:
        call(env)
    except Exception as exc:
        raised: Exception | None = exc
    else:
        raised = None
    calls = vendor_calls(env.sandbox)
    assert raised is not None, f"accepted, with {calls} vendor call(s)"
    assert isinstance(raised, error), f"{type(raised).__name__} instead of {error.__name__}: {raised}"
    assert fragment in str(raised), f"{fragment!r} not in: {raised}"
    if field is not None:
        assert raised.field == field, f"field {raised.field!r}, expected {field!r}: {raised}"
    assert calls == 0, f"{calls} call(s) reached the vendor before the error: {raised}"
    assert not Path(env.out).exists(), "something was exported"


def test_the_table_covers_at_least_thirty_inputs_of_every_kind():
    ids = [p.id for p in TABLE]
    assert len(ids) == len(set(ids)) > 100
    for kind in (
        "account-id",
        "urn",
        "url",
        "page-size",
        "budget",
        "since",
        "connection",
        "staging",
        "export",
        # issue 14's classes
        "trailing-newline",
        "nan",
        "1e300",
        "1e9",
        "full-refresh",
        "conversation-ids-empty",
        "person-none",
        "poll-interval",
        "lead-linkedin",
        "first-name",
        "company-url-with-space",
        "without-budget",
        "budget-fraction",
        "budget-true",
        "integer-lead-ids",
        "two-types",
        "bad-literal",
        "partition-date-basic",
        "compression-rar",
        "destination-empty",
        "batch-size-fraction",
        "manifest-missing",
        "page-size-text",
    ):
        assert any(kind in i for i in ids), kind


# ---- accepted forms: what is checked is what is used (adversarial review, F8, F9, numbers from text) -------
def test_false_as_text_is_false_sync_missing_makes_no_paid_sync(tmp_path, monkeypatch):
    """``sync_missing="false"`` (a rendered template) must not turn on paid synchronizations."""
    with Sandbox(seed=9, sizes=SIZES) as sandbox:  # its own: nobody synchronized these persons yet
        for key, value in sandbox.env().items():
            monkeypatch.setenv(key, value)
        env = Env(sandbox, str(tmp_path / "staging"), str(tmp_path / "out"), monkeypatch)
        la_retrieve(env, sync_missing="false", fail_on_error=False)
        calls = sandbox.stats().get("calls", {})
        syncs = {r: n for r, n in calls.items() if "synchronize" in r or "workflows" in r}
        assert not syncs, f"sync_missing='false' made synchronization calls: {syncs}"
        la_retrieve(env, sync_missing="true", fail_on_error=False)  # the check can fail: "true" does sync
        calls = sandbox.stats().get("calls", {})
        assert any("synchronize" in r or "workflows" in r for r in calls), calls


def test_a_page_size_in_text_is_read_as_the_number_it_writes(env):
    # LinkupAPI pages a conversation's messages by page_size (ConnectSafely's first read is one `since=0`
    # answer): with page_size "1", at least one message call per message held.
    env.sandbox.advance(linkup={"conversations": 2, "messages": 4})  # conversations of several messages
    linkup(env, page_size="1")
    reads = env.sandbox.stats().get("calls", {}).get("linkup POST /messages", 0)  # listing and reads
    held = len(env.sandbox.truth("linkup")["messages"])
    assert reads >= held, (
        f"page_size='1' did not page one message at a time: {reads} call(s), {held} messages"
    )


def test_koneksi_ids_and_urls_are_sent_as_they_were_checked(env):
    """A trailing newline (a rendered Variable) is stripped before the checks and before the request."""
    leads = [
        {
            **lead,
            "linkedin": lead["linkedin"] + "\n",
            "external_prospect_id": f" {lead['external_prospect_id']}\n",
        }
        for lead in env.leads
    ]
    url = "http://127.0.0.1:9/done\n"  # loopback, nothing listens: the sandbox's webhook goes nowhere
    request_id = kn_request(env, leads=leads, completion_notification_url=url)
    sent = env.sandbox.apps["koneksi"].generations[request_id].body
    assert sent["completion_notification_url"] == "http://127.0.0.1:9/done"
    assert [lead["linkedin"] for lead in sent["lead_data"]] == [lead["linkedin"] for lead in env.leads]
    assert [lead["external_prospect_id"] for lead in sent["lead_data"]] == [
        lead["external_prospect_id"] for lead in env.leads
    ]
    assert leads[0]["linkedin"].endswith("\n"), "the caller's leads were changed in place"
