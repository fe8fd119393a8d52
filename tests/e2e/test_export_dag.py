"""dag.test(): a mapped staging task feeds both exports, whose asset events carry the counts."""

from __future__ import annotations

import gzip
import json
import sqlite3
import uuid
from datetime import datetime
from pathlib import Path

from airflow_provider_linkmsg.io.staging import StagingWriter
from airflow_provider_linkmsg.operators.export import (
    LinkMsgExportToFilesOperator,
    LinkMsgExportToSqlOperator,
)
from airflow_provider_linkmsg.records import Message

COUNTS = {"linkup": 120, "connectsafely": 45}


def asset_events(uri: str) -> list[dict]:
    from airflow.utils.session import create_session

    from tests.compat import asset_events_of

    with create_session() as session:
        events = asset_events_of(uri, session)
        return [{"extra": e.extra, "dag_id": e.source_dag_id, "task_id": e.source_task_id} for e in events]


def test_dag_run_exports_and_emits_asset_events(run_dag, tmp_path, monkeypatch):
    from airflow.providers.common.compat.sdk import DAG, task

    staging, destination = tmp_path / "staging", tmp_path / "out"
    monkeypatch.setenv(
        "AIRFLOW_CONN_LINKMSG_E2E_SQLITE",
        json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "wh.db")}),
    )
    dag_id = f"linkmsg_export_{uuid.uuid4().hex[:8]}"

    with DAG(dag_id=dag_id, schedule=None, start_date=datetime(2024, 1, 1), catchup=False) as dag:

        @task(multiple_outputs=False)  # one XCom: Airflow 3.0 cannot push a None value under its own key
        def stage_inbox(vendor: str) -> dict:
            with StagingWriter(
                str(staging), vendor=vendor, record_type="message", run_id=f"{dag_id}-{vendor}"
            ) as writer:
                for i in range(COUNTS[vendor]):
                    writer.write(
                        Message(
                            vendor=vendor,
                            account_id="acct",
                            conversation_id=f"c{i % 4}",
                            message_id=f"m{i}",
                            sent_at="2024-05-01T00:00:00.000000Z",
                            direction="inbound",
                            text=f"hello {i}",
                        )
                    )
                writer.add_stats(api_calls=2)
            return writer.close().summary()

        staged = stage_inbox.expand(vendor=list(COUNTS))
        files = LinkMsgExportToFilesOperator(
            task_id="export_files",
            manifests=staged,
            destination=str(destination),
            compression="gzip",  # partitioned by the run's data date by default
        )
        to_sql = LinkMsgExportToSqlOperator(
            task_id="export_sql", manifests=staged, conn_id="linkmsg_e2e_sqlite", batch_size=50
        )

    from tests.compat import alias_extra, sync_bundles

    sync_bundles()  # Airflow 3: the "dags-folder" bundle row that run_dag's DAGs point at
    dag_run = run_dag(dag)
    assert dag_run.state == "success"

    (file_asset,) = files.outlets
    assert file_asset.uri == f"file://{destination}"
    events = asset_events(file_asset.uri)
    assert len(events) == 1
    assert events[0]["dag_id"] == dag_id
    assert events[0]["task_id"] == "export_files"
    assert events[0]["extra"] == {
        "records": 165,
        "manifests": 2,
        "by_vendor": COUNTS,
        "by_record_type": {"message": 165},
        "files": 2,
        "destination": str(destination),
        "format": "jsonl",
    }

    (sql_alias,) = to_sql.outlets  # the default alias announces the tables written, and only those
    assert sql_alias.name == "linkmsg-sql:linkmsg_e2e_sqlite"
    assert asset_events("x-linkmsg-sql://linkmsg_e2e_sqlite/linkmsg_generated_messages") == []
    (sql_event,) = asset_events("x-linkmsg-sql://linkmsg_e2e_sqlite/linkmsg_messages")
    sql_extra = alias_extra(sql_event["extra"])
    assert sql_extra["records"] == 165
    assert sql_extra["by_table"] == {"linkmsg_messages": 165}

    logical_date = dag_run.logical_date or dag_run.run_after
    written = sorted(destination.rglob("*.jsonl.gz"))
    assert [p.parent.relative_to(destination).as_posix() for p in written] == [
        f"vendor=connectsafely/date={logical_date:%Y-%m-%d}",
        f"vendor=linkup/date={logical_date:%Y-%m-%d}",
    ]
    assert sum(len(gzip.decompress(p.read_bytes()).splitlines()) for p in written) == 165
    with sqlite3.connect(Path(tmp_path / "wh.db")) as conn:
        assert conn.execute("SELECT vendor, COUNT(*) FROM linkmsg_messages GROUP BY vendor").fetchall() == [
            ("connectsafely", 45),
            ("linkup", 120),
        ]
