"""
Koneksi outreach: generate personalised messages for a campaign's leads, wait in the triggerer, export.

request_generation ─► wait_for_generation (deferrable) ─► retrieve_messages ─┬► export_files
                                                                             └► export_sql

The leads come from a small JSON file next to this DAG (a CSV path or an upstream task's XCom works the
same). The request is validated and checked against ``max_messages`` before the paid call; a retry of the
request task reuses the generation it already started. Connections: ``koneksi_default`` and the SQL
connection ``linkmsg_warehouse``; the export root is the Airflow Variable ``linkmsg_export_path``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_linkmsg.operators.export import LinkMsgExportToFilesOperator, LinkMsgExportToSqlOperator
from airflow_provider_linkmsg.operators.koneksi import (
    KoneksiRequestMessageGenerationOperator,
    KoneksiRetrieveMessagesOperator,
)
from airflow_provider_linkmsg.sensors.koneksi import KoneksiGenerationSensor

LEADS = str(Path(__file__).parent / "data" / "koneksi_leads.json")
EXPORT_PATH = "{{ var.value.get('linkmsg_export_path', '/tmp/linkmsg-export') }}"

CAMPAIGN = {
    "automation_tool_customer_id": "customer_12345",
    "automation_tool_campaign_id": "campaign_spring_2026",
    "automation_tool_campaign_name": "Spring 2026 - Data leaders",
    "proposition_company_name": "Acme Analytics",
    "proposition_company_url": "https://acme-analytics.example.com",
    "message_sequence": [
        {"step": 1, "messageType": "connection_request"},
        {"step": 2, "messageType": "first_follow_up"},
    ],
    "signoff_name": "Sam",
    "completion_notification_url": "https://hooks.example.com/koneksi/done",
}

with DAG(
    dag_id="linkmsg_koneksi_outreach",
    description="Generate outreach messages with Koneksi and export them",
    schedule=None,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["linkmsg", "koneksi"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
):
    request = KoneksiRequestMessageGenerationOperator(
        task_id="request_generation", campaign=CAMPAIGN, leads=LEADS, max_messages=200
    )
    wait = KoneksiGenerationSensor(
        task_id="wait_for_generation",
        secure_request_id=request.output,
        deferrable=True,
        poke_interval=5,
        timeout=6 * 3600,
        max_failed_share=0.5,
    )
    retrieve = KoneksiRetrieveMessagesOperator(task_id="retrieve_messages", secure_request_id=request.output)
    export_files = LinkMsgExportToFilesOperator(
        task_id="export_files", manifests=retrieve.output, destination=f"{EXPORT_PATH}/koneksi"
    )
    export_sql = LinkMsgExportToSqlOperator(
        task_id="export_sql", manifests=retrieve.output, conn_id="linkmsg_warehouse"
    )
    wait >> retrieve
