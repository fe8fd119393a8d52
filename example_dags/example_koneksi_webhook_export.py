"""
Koneksi export on completion: no sensor, no trigger; the finished generation's webhook starts the DAG.

Koneksi POSTs its completion notification to the provider's webhook plugin in the Airflow API server
(``POST /linkmsg/webhooks/koneksi/koneksi_default``; the request operator fills in that
``completion_notification_url`` from ``[linkmsg] webhook_base_url``). The plugin verifies the signature and
records one event of :func:`~airflow_provider_linkmsg.events.koneksi_completion_asset`, which schedules
this DAG:

generation_ids ─► retrieve_messages (mapped, one per finished generation) ─┬► export_files
                                                                          └► export_sql

One run can carry several completions (generations that finished before the scheduler looked): each
event's ``secure_request_id`` is retrieved. The request side is any DAG with a
``KoneksiRequestMessageGenerationOperator`` on ``koneksi_default``. The SQL connection is
``linkmsg_warehouse``; the export root is the Airflow Variable ``linkmsg_export_path``. See
``docs/events.md``.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_linkmsg.events import koneksi_completion_asset
from airflow_provider_linkmsg.operators.export import LinkMsgExportToFilesOperator, LinkMsgExportToSqlOperator
from airflow_provider_linkmsg.operators.koneksi import KoneksiRetrieveMessagesOperator

EXPORT_PATH = "{{ var.value.get('linkmsg_export_path', '/tmp/linkmsg-export') }}"
COMPLETIONS = koneksi_completion_asset("koneksi_default")


@task
def generation_ids(triggering_asset_events=None) -> list[str]:
    """The ``secure_request_id`` of every completion that triggered this run, oldest first, once each."""
    ids: list[str] = []
    # no `or {}`: a plain dict hashes the asset, which Airflow 3.0's Asset does not allow (a run with no events)
    for event in triggering_asset_events.get(COMPLETIONS, []) if triggering_asset_events else []:
        request_id = (event.extra or {}).get("secure_request_id")
        if request_id and request_id not in ids:
            ids.append(request_id)
    return ids


with DAG(
    dag_id="linkmsg_koneksi_webhook_export",
    description="Retrieve and export each Koneksi generation as soon as its completion webhook arrives",
    schedule=[COMPLETIONS],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["linkmsg", "koneksi", "events"],
):
    retrieve = KoneksiRetrieveMessagesOperator.partial(task_id="retrieve_messages").expand(
        secure_request_id=generation_ids()
    )
    LinkMsgExportToFilesOperator(
        task_id="export_files", manifests=retrieve.output, destination=f"{EXPORT_PATH}/koneksi"
    )
    LinkMsgExportToSqlOperator(task_id="export_sql", manifests=retrieve.output, conn_id="linkmsg_warehouse")
