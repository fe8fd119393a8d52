"""
Downstream of the unified inbox: runs whenever the table ``linkmsg_messages`` of the connection
``linkmsg_warehouse`` (asset ``x-linkmsg-sql://linkmsg_warehouse/linkmsg_messages``) gets new messages
(an asset event of the unified inbox's export, or of any per-vendor inbox DAG), and reports what arrived.

The asset event's ``extra`` carries the export's counts (``records``, ``by_vendor`` ...), so the report
knows what changed without reading the messages again; the table answers the rest.
"""

from __future__ import annotations

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, Asset, task

INBOX = Asset("x-linkmsg-sql://linkmsg_warehouse/linkmsg_messages")


@task(inlets=[INBOX])
def report(*, inlet_events=None) -> dict:
    """Log the latest export's counts and the table's totals per vendor and direction."""
    from airflow.providers.common.compat.sdk import BaseHook
    from airflow.providers.common.sql.hooks.sql import DbApiHook  # noqa: F401 - the SQL extra is needed

    events = inlet_events[INBOX] if inlet_events is not None else []
    latest = dict(events[-1].extra) if events else {}
    hook = BaseHook.get_connection("linkmsg_warehouse").get_hook()
    rows = hook.get_records(
        "SELECT vendor, direction, COUNT(*) FROM linkmsg_messages GROUP BY vendor, direction ORDER BY 1, 2"
    )
    totals = {f"{vendor}/{direction}": count for vendor, direction, count in rows}
    print(f"latest export: {latest.get('records', 0)} records {latest.get('by_vendor', {})}; table: {totals}")
    return {"latest_export": latest.get("by_vendor", {}), "table": totals}


with DAG(
    dag_id="linkmsg_new_messages_report",
    description="Runs on new messages in the unified inbox table",
    schedule=[INBOX],
    start_date=datetime(2026, 1, 1),
    catchup=False,
    tags=["linkmsg"],
):
    report()
