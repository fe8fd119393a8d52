"""
One inbox for all three inbox vendors: ConnectSafely, Linked API and LinkupAPI land in one ``Message``
table, and the export announces new messages through an Airflow asset.

connectsafely: list_accounts ─► retrieve[account] ─┐
linkup:        list_accounts ─► retrieve[account] ─┼─► export_sql ─► Asset(x-linkmsg-sql://linkmsg_warehouse/linkmsg_messages)
linkedapi:     sync (deferrable) ─► retrieve ──────┘

Records of every vendor share one shape (``Message``: vendor, account, conversation, message id, UTC
time, direction, sender, text, type, attachments flag, channel) and one key, so the table holds each
message once however often it is exported. This DAG keeps its own watermarks, independent of the
per-vendor example DAGs that read the same accounts: each retrieve task's ``state_key`` defaults to
``{dag_id}.{task_id}``, so every destination gets every message (its staged runs also go to their own
folder, ``unified``). ``example_new_messages_report`` runs whenever the asset gets new messages.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, Asset, task

from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from airflow_provider_linkmsg.operators.export import LinkMsgExportToSqlOperator
from airflow_provider_linkmsg.operators.linkedapi import (
    LinkedApiRetrieveMessagesOperator,
    LinkedApiSyncConversationsOperator,
)
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from airflow_provider_linkmsg.utils import default_staging_root

INBOX = Asset("x-linkmsg-sql://linkmsg_warehouse/linkmsg_messages")
# its own staged runs: a "unified" folder under the configured staging root ([linkmsg] staging_path); its
# watermarks are its own anyway (state_key defaults to "<dag_id>.<task_id>")
STAGING = os.path.join(default_staging_root(), "unified")
PERSONS_FILE = Path(__file__).parent / "data" / "linkedapi_persons.json"


@task
def connectsafely_accounts() -> list[str]:
    from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook

    return [account["id"] for account in ConnectSafelyHook().list_accounts()]


@task
def linkup_accounts() -> list[str]:
    from airflow_provider_linkmsg.hooks.linkup import LinkupHook

    return [a["account_id"] for a in LinkupHook().list_accounts() if a.get("is_active", True)]


@task
def linkedapi_persons() -> list:
    import json

    from airflow.providers.common.compat.sdk import Variable

    persons = Variable.get("linkmsg_linkedapi_persons", None, deserialize_json=True)
    return persons if persons is not None else json.loads(PERSONS_FILE.read_text())


with DAG(
    dag_id="linkmsg_unified_inbox",
    description="ConnectSafely, Linked API and LinkupAPI into one messages table, announced as an asset",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["linkmsg", "connectsafely", "linkedapi", "linkup"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
):
    connectsafely = ConnectSafelyRetrieveMessagesOperator.partial(
        task_id="connectsafely_retrieve", staging_path=STAGING
    ).expand(account_id=connectsafely_accounts())
    linkup = LinkupRetrieveMessagesOperator.partial(
        task_id="linkup_retrieve", staging_path=STAGING, max_credits=500
    ).expand(account_id=linkup_accounts())
    persons = linkedapi_persons()
    sync = LinkedApiSyncConversationsOperator(
        task_id="linkedapi_sync", persons=persons, deferrable=True, poll_interval=2, staging_path=STAGING
    )
    linkedapi = LinkedApiRetrieveMessagesOperator(
        task_id="linkedapi_retrieve", persons=persons, staging_path=STAGING
    )
    sync >> linkedapi
    LinkMsgExportToSqlOperator(
        task_id="export_sql",
        manifests=[connectsafely.output, linkup.output, linkedapi.output],
        conn_id="linkmsg_warehouse",
        outlets=[INBOX],
    )
