"""
LinkupAPI inbox, hourly and incremental within a credit budget, one mapped task per account.

list_accounts ─► retrieve_messages[account] (mapped, max_credits) ─┬► export_files (Parquet)
                                                                   └► export_sql

LinkupAPI charges credits per call. A run lists the inbox, skips conversations that did not change
since their watermark, and pages each changed conversation back only until it reaches the watermark.
``max_credits`` caps each account's run: the task stops before a call that could exceed it, stages what
it read, and the next run continues from there. The watermarks belong to this DAG's task (``state_key``
defaults to ``linkmsg_linkup_inbox.retrieve_messages``): ``example_unified_inbox``, which reads the same
accounts into another destination, keeps its own. Connections: ``linkup_default`` and
``linkmsg_warehouse``; export root: Variable ``linkmsg_export_path``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_linkmsg.operators.export import LinkMsgExportToFilesOperator, LinkMsgExportToSqlOperator
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator

EXPORT_PATH = "{{ var.value.get('linkmsg_export_path', '/tmp/linkmsg-export') }}"


@task
def list_accounts() -> list[str]:
    """Every active LinkedIn account of the LinkupAPI key (listing accounts is free)."""
    from airflow_provider_linkmsg.hooks.linkup import LinkupHook

    return [a["account_id"] for a in LinkupHook().list_accounts() if a.get("is_active", True)]


with DAG(
    dag_id="linkmsg_linkup_inbox",
    description="Incremental LinkupAPI inbox retrieval within a credit budget, mapped over accounts",
    schedule="@hourly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["linkmsg", "linkup"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
):
    staged = LinkupRetrieveMessagesOperator.partial(
        task_id="retrieve_messages", max_credits=500, max_workers=4
    ).expand(account_id=list_accounts())
    LinkMsgExportToFilesOperator(
        task_id="export_files",
        manifests=staged.output,
        destination=f"{EXPORT_PATH}/linkup",
        file_format="parquet",
    )
    LinkMsgExportToSqlOperator(task_id="export_sql", manifests=staged.output, conn_id="linkmsg_warehouse")
