"""
ConnectSafely inbox, hourly and incremental, one mapped task per LinkedIn account.

list_accounts ─► retrieve_messages[account] (mapped) ─┬► export_files
                                                      └► export_sql

Each run reads only the conversations whose last activity is newer than their watermark, and of those
only the new messages (``since``); watermarks advance only after the messages are staged. Connections:
``connectsafely_default`` and ``linkmsg_warehouse``; export root: Variable ``linkmsg_export_path``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from airflow_provider_linkmsg.operators.export import LinkMsgExportToFilesOperator, LinkMsgExportToSqlOperator

EXPORT_PATH = "{{ var.value.get('linkmsg_export_path', '/tmp/linkmsg-export') }}"


@task
def list_accounts() -> list[str]:
    """Every LinkedIn account connected to the ConnectSafely key (the mapping's input)."""
    from airflow_provider_linkmsg.hooks.connectsafely import ConnectSafelyHook

    return [account["id"] for account in ConnectSafelyHook().list_accounts()]


with DAG(
    dag_id="linkmsg_connectsafely_inbox",
    description="Incremental ConnectSafely inbox retrieval, mapped over accounts",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # two runs of one account at once would read the same conversations twice
    tags=["linkmsg", "connectsafely"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
):
    staged = ConnectSafelyRetrieveMessagesOperator.partial(
        task_id="retrieve_messages", max_workers=4, overlap_seconds=300
    ).expand(account_id=list_accounts())
    LinkMsgExportToFilesOperator(
        task_id="export_files", manifests=staged.output, destination=f"{EXPORT_PATH}/connectsafely"
    )
    LinkMsgExportToSqlOperator(task_id="export_sql", manifests=staged.output, conn_id="linkmsg_warehouse")
