"""
Linked API inbox: synchronize the conversations of the persons we track, then read them incrementally.

tracked_persons ─► sync_conversations (deferrable) ─► retrieve_messages ─┬► export_files
                                                                         └► export_sql

Synchronization is slow and asynchronous: the sync task waits in the triggerer, skips persons already
synchronized, and a retry reconnects to the job it started instead of paying for another. Retrieval
reads each person's messages since their watermark, many persons per call. The persons come from the
Airflow Variable ``linkmsg_linkedapi_persons`` (a JSON list of LinkedIn or Sales Navigator URLs, or
``{"person": URL, "channel": "salesNavigator"}`` items), else from ``data/linkedapi_persons.json``.
Connections: ``linkedapi_default`` (its ``api`` extra picks the seed's or the current API) and
``linkmsg_warehouse``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_linkmsg.operators.export import LinkMsgExportToFilesOperator, LinkMsgExportToSqlOperator
from airflow_provider_linkmsg.operators.linkedapi import (
    LinkedApiRetrieveMessagesOperator,
    LinkedApiSyncConversationsOperator,
)

EXPORT_PATH = "{{ var.value.get('linkmsg_export_path', '/tmp/linkmsg-export') }}"
PERSONS_FILE = Path(__file__).parent / "data" / "linkedapi_persons.json"


@task
def tracked_persons() -> list:
    """The persons whose conversations we keep: the Variable if set, else the bundled file."""
    import json

    from airflow.providers.common.compat.sdk import Variable

    persons = Variable.get("linkmsg_linkedapi_persons", None, deserialize_json=True)
    return persons if persons is not None else json.loads(PERSONS_FILE.read_text())


with DAG(
    dag_id="linkmsg_linkedapi_inbox",
    description="Linked API: deferrable conversation sync, then incremental retrieval",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["linkmsg", "linkedapi"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
):
    persons = tracked_persons()
    sync = LinkedApiSyncConversationsOperator(
        task_id="sync_conversations", persons=persons, deferrable=True, poll_interval=2, timeout=6 * 3600
    )
    staged = LinkedApiRetrieveMessagesOperator(task_id="retrieve_messages", persons=persons)
    sync >> staged
    LinkMsgExportToFilesOperator(
        task_id="export_files", manifests=staged.output, destination=f"{EXPORT_PATH}/linkedapi"
    )
    LinkMsgExportToSqlOperator(task_id="export_sql", manifests=staged.output, conn_id="linkmsg_warehouse")
