"""
ConnectSafely inbox on new activity: an asset watcher in the triggerer starts the incremental retrieve.

The triggerer runs :class:`~airflow_provider_linkmsg.triggers.watchers.connectsafely.ConnectSafelyInboxActivityTrigger`
for the account: one ``GET /conversations`` call every ``poll_interval`` (free, inside the connection's rate
limit), and an event of the asset ``linkmsg-connectsafely-activity`` when conversations gained activity
(``account``, ``conversations``, ``newest_activity`` in the event). The event schedules this DAG:

retrieve_messages ─┬► export_files
                   └► export_sql

The retrieve is the normal incremental one: it reads the conversations whose activity moved since their
watermark, whatever the event named, so an event that was lost (a triggerer dying between the watcher's
event and its commit) is caught up by the next run.

Airflow 2.11 has no asset watchers: there this file falls back to an hourly schedule (same tasks) and says
so in the DAG's description. The account id comes from the environment variable
``LINKMSG_CONNECTSAFELY_ACCOUNT`` (read when the file is parsed: a watcher's arguments are fixed then);
connections ``connectsafely_default`` and ``linkmsg_warehouse``; export root: Variable ``linkmsg_export_path``.
See ``docs/events.md``.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, Asset

from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from airflow_provider_linkmsg.operators.export import LinkMsgExportToFilesOperator, LinkMsgExportToSqlOperator

EXPORT_PATH = "{{ var.value.get('linkmsg_export_path', '/tmp/linkmsg-export') }}"
ACCOUNT_ID = os.environ.get("LINKMSG_CONNECTSAFELY_ACCOUNT", "696ce9e780e0483585e4e553")

try:
    from airflow.sdk import AssetWatcher  # Airflow >= 3.0
except ImportError:  # Airflow 2.11: no watchers; the same tasks run hourly
    AssetWatcher = None

if AssetWatcher is not None:
    from airflow_provider_linkmsg.triggers.watchers.connectsafely import ConnectSafelyInboxActivityTrigger

    ACTIVITY = Asset(
        name="linkmsg-connectsafely-activity",
        uri=f"x-linkmsg-connectsafely://connectsafely_default/{ACCOUNT_ID}/activity",
        watchers=[
            AssetWatcher(
                name="connectsafely_inbox_activity",
                trigger=ConnectSafelyInboxActivityTrigger(account_id=ACCOUNT_ID, poll_interval=120),
            )
        ],
    )
    SCHEDULE: object = [ACTIVITY]
    HOW = "on new inbox activity (asset watcher)"
else:
    SCHEDULE = "@hourly"
    HOW = "hourly (Airflow 2.11 has no asset watchers)"

with DAG(
    dag_id="linkmsg_connectsafely_activity_watcher",
    description=f"Incremental ConnectSafely retrieval {HOW}",
    schedule=SCHEDULE,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,  # events that arrive during a run queue one more run, which reads what is left
    tags=["linkmsg", "connectsafely", "events"],
    default_args={"retries": 2, "retry_delay": timedelta(minutes=2)},
):
    staged = ConnectSafelyRetrieveMessagesOperator(
        task_id="retrieve_messages", account_id=ACCOUNT_ID, overlap_seconds=300
    )
    LinkMsgExportToFilesOperator(
        task_id="export_files", manifests=staged.output, destination=f"{EXPORT_PATH}/connectsafely"
    )
    LinkMsgExportToSqlOperator(task_id="export_sql", manifests=staged.output, conn_id="linkmsg_warehouse")
