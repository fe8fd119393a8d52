"""The export: staged records to JSONL / CSV / Parquet files and to SQLite and PostgreSQL tables."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import multiprocessing
import os
import shutil
import signal
import sqlite3
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import fsspec
import pyarrow.parquet as pq
import pytest

from airflow_provider_linkmsg.exceptions import LinkMsgError, LinkMsgValidationError
from airflow_provider_linkmsg.io.file_export import export_manifest
from airflow_provider_linkmsg.io.sql import SqlUpserter
from airflow_provider_linkmsg.io.staging import Manifest, StagingWriter, iter_records, to_path
from airflow_provider_linkmsg.operators.export import (
    LinkMsgExportToFilesOperator,
    LinkMsgExportToSqlOperator,
    resolve_manifests,
)
from airflow_provider_linkmsg.records import RECORD_TYPES, GeneratedMessage, Message, to_utc_iso
from tests.compat import alias_events, outlet_event_accessors, storage_uri

FORK = multiprocessing.get_context("fork")  # a real process, killed for real, without re-importing Airflow


def messages(n: int, vendor: str, *, start: int = 0, edit: str = "") -> list[Message]:
    return [
        Message(
            vendor=vendor,
            account_id="urn:li:acct:7",
            conversation_id=f"conv-{i % 13}",
            message_id=f"msg-{i}",
            sent_at=f"2024-05-{1 + i % 28:02d}T{i % 24:02d}:00:{i % 60:02d}.{i % 1000:06d}Z",
            direction="outbound" if i % 3 == 0 else "inbound",
            sender_id=None if i % 5 == 0 else f"person-{i % 11}",
            sender_name='Zoë O\'Brien, "Jr"\u2028' if i % 4 == 0 else None,
            text=(f"line one\nline two {i}, é 中{edit}" if i % 2 else edit),
            message_type="INVITATION" if i % 17 == 0 else "TEXT",
            has_attachments=i % 6 == 0,
            channel="sales_navigator" if i % 9 == 0 else "standard",
            raw={"id": f"msg-{i}", "n": [i, None, "x"]},
        )
        for i in range(start, start + n)
    ]


def generated(n: int) -> list[GeneratedMessage]:
    return [
        GeneratedMessage(
            request_id="req-9",
            lead_id=f"lead-{i // 2}",
            message_type="connection_request" if i % 2 == 0 else "first_follow_up",
            step=1 + i % 2,
            status="generated" if i % 4 else "failed",
            text=f'Hello {i}, "quoted"\nbye' if i % 4 else None,
            linkedin=f"https://www.linkedin.com/in/lead-{i // 2}",
            campaign_id="camp-1",
            notice=None if i % 4 else "char_limit",
            retrieved_at=f"2024-05-02T00:00:{i % 60:02d}.000000Z",
            raw={"lead": i},
        )
        for i in range(n)
    ]


def data_files(destination: Path) -> list[Path]:
    """Every file under ``destination`` but the key files (``_linkmsg_keys/``)."""
    return [p for p in destination.rglob("*") if p.is_file() and "_linkmsg_keys" not in p.parts]


def keys_file(destination: Path, path: Path) -> Path:
    """The key file of an exported data file."""
    return destination / "_linkmsg_keys" / f"{path.relative_to(destination)}.keys"


def stage(root, records, *, run_id: str, max_records_per_file: int = 100_000, include_raw: bool = True):
    first = records[0]
    with StagingWriter(
        root,
        vendor=first.vendor,
        record_type=first.record_type,
        run_id=run_id,
        include_raw=include_raw,
        max_records_per_file=max_records_per_file,
    ) as writer:
        for record in records:
            writer.write(record)
    return writer.close()


def run_operator(operator):
    context = {"outlet_events": outlet_event_accessors()}
    result = operator.execute(context)
    json.dumps(result)  # the XCom value must be small plain JSON
    return result, context


# --- reading exported files back, independently of the export code --------------------------------


def _field_kinds(record_cls):
    return {f.name: f for f in dataclasses.fields(record_cls)}


def read_jsonl(path: str, record_cls):
    with fsspec.open(path, "rb", compression="infer") as f:
        return [record_cls.from_json(line) for line in f]


def read_csv(path: str, record_cls):
    fields = _field_kinds(record_cls)
    with fsspec.open(path, "rb", compression="infer") as f:
        rows = list(csv.DictReader(io.TextIOWrapper(f, encoding="utf-8", newline="")))
    out = []
    for row in rows:
        data = {}
        for name, value in row.items():
            if name == "key":
                continue
            f = fields[name]
            if value == "" and f.default is None:
                value = None
            elif name == "has_attachments":
                value = {"true": True, "false": False}[value]
            elif name == "step":
                value = int(value)
            elif name == "raw":
                value = json.loads(value)
            data[name] = value
        out.append((row["key"], record_cls.from_dict(data)))
    assert all(key == record.key for key, record in out)
    return [record for _, record in out]


def read_parquet(path: str, record_cls):
    with fsspec.open(path, "rb") as f:
        table = pq.read_table(f)
    out = []
    for row in table.to_pylist():
        row.pop("key")
        for name, value in row.items():
            if isinstance(value, datetime):
                row[name] = to_utc_iso(value)
        if row.get("raw") is not None:
            row["raw"] = json.loads(row["raw"])
        out.append(record_cls.from_dict(row))
    return out


READERS = {"jsonl": read_jsonl, "csv": read_csv, "parquet": read_parquet}


@pytest.mark.parametrize(
    ("file_format", "compression", "suffix"),
    [
        ("jsonl", None, ".jsonl"),
        ("jsonl", "gzip", ".jsonl.gz"),
        ("csv", None, ".csv"),
        ("csv", "gzip", ".csv.gz"),
        ("parquet", None, ".parquet"),
        ("parquet", "zstd", ".parquet"),
    ],
)
def test_files_read_back_equal(tmp_path, file_format, compression, suffix):
    inbox = messages(230, "linkup")
    koneksi = generated(41)
    staged = [
        stage(
            tmp_path / "staging", inbox, run_id="manual__2024-05-03T00:00:00+00:00", max_records_per_file=100
        ),
        stage(tmp_path / "staging", koneksi, run_id="gen-1"),
    ]
    operator = LinkMsgExportToFilesOperator(
        task_id="export",
        manifests=[staged[0].summary(), str(staged[1].path.parent)],
        destination=str(tmp_path / "out"),
        file_format=file_format,
        compression=compression,
        include_raw=True,
        partition_date="2024-05-03",
    )
    result, _ = run_operator(operator)

    assert result["records"] == 271
    assert result["by_vendor"] == {"linkup": 230, "koneksi": 41}
    paths = [Path(f["path"]) for f in result["files"]]
    assert [f["records"] for f in result["files"]] == [100, 100, 30, 41]
    assert [p.relative_to(tmp_path / "out").parent.as_posix() for p in paths] == [
        "vendor=linkup/date=2024-05-03",
        "vendor=linkup/date=2024-05-03",
        "vendor=linkup/date=2024-05-03",
        "vendor=koneksi/date=2024-05-03",
    ]
    assert paths[0].name.endswith(f"-part-00000{suffix}")
    assert paths[3].name == f"gen-1-part-00000{suffix}"
    on_disk = sorted(p for p in data_files(tmp_path / "out"))
    assert on_disk == sorted(paths), "only the final files, no temporary files"
    keys = sorted((tmp_path / "out" / "_linkmsg_keys").rglob("*"))
    assert [p for p in keys if p.is_file()] == sorted(keys_file(tmp_path / "out", p) for p in paths)

    read = READERS[file_format]
    back_inbox = [r for p in paths[:3] for r in read(str(p), Message)]
    back_koneksi = read(str(paths[3]), GeneratedMessage)
    assert back_inbox == inbox
    assert back_koneksi == koneksi
    assert [r.raw for r in back_inbox] == [r.raw for r in inbox]
    assert [r.retrieved_at for r in back_koneksi] == [r.retrieved_at for r in koneksi]


def test_files_without_raw_and_default_partition_date(tmp_path):
    inbox = messages(10, "connectsafely")
    manifest = stage(tmp_path / "staging", inbox, run_id="r")
    operator = LinkMsgExportToFilesOperator(
        task_id="export", manifests=str(manifest.path), destination=str(tmp_path / "out"), file_format="csv"
    )
    result, _ = run_operator(operator)
    path = Path(result["files"][0]["path"])
    assert path.parent.name == f"date={manifest.created_at[:10]}"
    header = path.read_text(encoding="utf-8").splitlines()[0]
    assert header.split(",") == ["key", *[f.name for f in dataclasses.fields(Message) if f.name != "raw"]]
    assert all(r.raw is None for r in read_csv(str(path), Message))
    assert read_csv(str(path), Message) == inbox


@pytest.mark.parametrize("include_raw", [False, True])
def test_jsonl_raw_only_when_asked(tmp_path, include_raw):
    inbox = messages(30, "linkup")
    manifest = stage(tmp_path / "staging", inbox, run_id="r")
    operator = LinkMsgExportToFilesOperator(
        task_id="export",
        manifests=manifest.summary(),
        destination=str(tmp_path / "out"),
        include_raw=include_raw,
    )
    result, _ = run_operator(operator)
    lines = Path(result["files"][0]["path"]).read_bytes().split(b"\n")
    assert lines.pop() == b""
    assert [json.loads(line).get("raw") for line in lines] == [m.raw if include_raw else None for m in inbox]
    assert [Message.from_json(line) for line in lines] == inbox


def test_export_again_overwrites_identically(tmp_path):
    manifest = stage(tmp_path / "staging", messages(150, "linkup"), run_id="r", max_records_per_file=60)
    outputs = []
    for _ in range(2):
        for file_format, compression in (("jsonl", "gzip"), ("parquet", None), ("csv", None)):
            operator = LinkMsgExportToFilesOperator(
                task_id="export",
                manifests=[manifest.summary()],
                destination=str(tmp_path / f"out-{file_format}"),
                file_format=file_format,
                compression=compression,
            )
            run_operator(operator)
        outputs.append({p: p.read_bytes() for p in tmp_path.glob("out-*/**/*") if p.is_file()})
    assert len(outputs[0]) == 18  # 3 parts in 3 formats, each with its key file
    assert outputs[0] == outputs[1]


def test_memory_store_for_staging_and_destination():
    bucket = f"linkmsg-{uuid.uuid4().hex[:8]}"
    inbox = messages(75, "linkedapi")
    manifest = stage(f"memory://{bucket}/staging", inbox, run_id="r", max_records_per_file=50)
    for file_format in ("jsonl", "csv", "parquet"):
        operator = LinkMsgExportToFilesOperator(
            task_id="export",
            manifests=manifest.summary(),
            destination=f"memory://{bucket}/out-{file_format}",
            file_format=file_format,
            include_raw=True,
        )
        for _ in range(2):  # the second export finds the first one's key files and rewrites the same files
            result, context = run_operator(operator)
        assert result["destination"] == storage_uri(f"memory://{bucket}/out-{file_format}")
        prefix = storage_uri(f"memory://{bucket}/out-{file_format}/vendor=linkedapi") + "/"
        assert all(f["path"].startswith(prefix) for f in result["files"])
        back = [r for f in result["files"] for r in READERS[file_format](f["path"], Message)]
        assert back == inbox
        (asset,) = operator.outlets
        assert asset.uri == f"memory://{bucket}/out-{file_format}"
        assert context["outlet_events"][asset].extra["records"] == 75
    fs = fsspec.filesystem("memory")
    names = [p.rsplit("/", 1)[1] for p in fs.find(f"/{bucket}") if "/out-" in p]
    assert sorted(names) == sorted(
        f"r-part-0000{i}.{ext}{keys}"
        for i in range(2)
        for ext in ("jsonl", "csv", "parquet")
        for keys in ("", ".keys")
    )
    fs.rm(f"/{bucket}", recursive=True)


@pytest.mark.parametrize("file_format", ["jsonl", "csv", "parquet"])
def test_failed_export_leaves_no_half_file(tmp_path, file_format):
    manifest = stage(tmp_path / "staging", messages(30, "linkup"), run_id="r", max_records_per_file=10)
    part = manifest.directory / "part-00001.jsonl"
    lines = Path(part.path).read_bytes().splitlines(keepends=True)
    Path(part.path).write_bytes(b"".join(lines[:7]))  # the staged part lost records after the run

    operator = LinkMsgExportToFilesOperator(
        task_id="export",
        manifests=manifest.summary(),
        destination=str(tmp_path / "out"),
        file_format="parquet",
    )
    with pytest.raises(LinkMsgError, match="holds 7 records but its manifest says 10"):
        run_operator(operator)
    # the run's keys are read (and its parts checked) before anything is written: nothing is visible
    files = sorted(p.name for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert files == [], "no file, not even a temporary one"


def test_resolve_manifests_accepts_every_xcom_shape(tmp_path):
    a = stage(tmp_path, messages(3, "linkup"), run_id="a")
    b = stage(tmp_path, messages(2, "connectsafely"), run_id="b")
    c = stage(tmp_path, generated(2), run_id="c")
    shapes = [
        [a.summary(), [b.summary(), [str(c.path)]]],
        repr([a.summary(), b.summary(), {"path": str(c.path.parent)}]),
        json.dumps([a.summary(), b.summary(), c.summary()]),
        (a, b.path, c.summary(), a.summary(), None),
    ]
    for value in shapes:
        assert [m.run_id for m in resolve_manifests(value)] == ["a", "b", "c"]
    assert resolve_manifests([]) == []
    with pytest.raises(LinkMsgValidationError, match="'manifest' or 'path'"):
        resolve_manifests([{"records": 3}])
    with pytest.raises(LinkMsgValidationError, match="from int"):
        resolve_manifests([3])
    with pytest.raises(FileNotFoundError, match="did not complete"):
        resolve_manifests(str(tmp_path / "linkup" / "missing"))


def test_no_manifest_skips(tmp_path):
    from airflow.providers.common.compat.sdk import AirflowSkipException

    operator = LinkMsgExportToFilesOperator(task_id="export", manifests=[], destination=str(tmp_path))
    with pytest.raises(AirflowSkipException):
        run_operator(operator)


def test_outlets_default_user_given_and_templated(tmp_path):
    from airflow.providers.common.compat.sdk import Asset

    default = LinkMsgExportToFilesOperator(task_id="a", manifests=[], destination="s3://aws_x@bucket/out/")
    assert [o.uri for o in default.outlets] == ["s3://bucket/out"]
    local = LinkMsgExportToFilesOperator(task_id="b", manifests=[], destination=str(tmp_path / "o"))
    assert [o.uri for o in local.outlets] == [f"file://{tmp_path}/o"]
    templated = LinkMsgExportToFilesOperator(task_id="c", manifests=[], destination="s3://b/{{ ds }}")
    assert templated.outlets == []
    sql = LinkMsgExportToSqlOperator(task_id="d", manifests=[], conn_id="wh")
    assert [o.name for o in sql.outlets] == ["linkmsg-sql:wh"]  # an alias: the tables written get events

    mine = Asset("s3://lake/linkedin/messages")
    manifest = stage(tmp_path, messages(4, "linkup"), run_id="r")
    operator = LinkMsgExportToFilesOperator(
        task_id="e", manifests=manifest.summary(), destination=str(tmp_path / "out"), outlets=[mine]
    )
    _, context = run_operator(operator)
    assert operator.outlets == [mine]
    assert context["outlet_events"][mine].extra == {
        "records": 4,
        "manifests": 1,
        "by_vendor": {"linkup": 4},
        "by_record_type": {"message": 4},
        "files": 1,
        "destination": str(tmp_path / "out"),
        "format": "jsonl",
    }


def test_openlineage_inputs_and_outputs(tmp_path):
    manifest = stage(tmp_path / "staging", messages(4, "linkup"), run_id="r")
    operator = LinkMsgExportToFilesOperator(
        task_id="e", manifests=manifest.summary(), destination=str(tmp_path / "out")
    )
    run_operator(operator)
    lineage = operator.get_openlineage_facets_on_complete(None)
    assert [(d.namespace, d.name) for d in lineage.inputs] == [("file", str(tmp_path / "staging/linkup/r"))]
    assert [(d.namespace, d.name) for d in lineage.outputs] == [("file", str(tmp_path / "out"))]


def test_bad_format_is_refused_at_run_time(tmp_path):
    operator = LinkMsgExportToFilesOperator(
        task_id="e", manifests=[], destination=str(tmp_path), file_format="xml"
    )
    with pytest.raises(ValueError, match="file_format"):
        run_operator(operator)
    operator = LinkMsgExportToFilesOperator(
        task_id="e", manifests=[], destination=str(tmp_path), file_format="csv", compression="zstd"
    )
    with pytest.raises(ValueError, match="gzip"):
        run_operator(operator)


# --- SQL ----------------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_conn_id(tmp_path, monkeypatch):
    conn_id = "linkmsg_test_sqlite"
    db = tmp_path / "warehouse.db"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({"conn_type": "sqlite", "host": str(db)})
    )
    return conn_id


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request):
    """``(dialect, conn_id, table suffix)`` of a real database."""
    if request.param == "sqlite":
        return "sqlite", request.getfixturevalue("sqlite_conn_id"), ""
    return "postgres", request.getfixturevalue("postgres_conn_id"), f"_{uuid.uuid4().hex[:8]}"


def db_hook(conn_id: str):
    from airflow.providers.common.compat.sdk import BaseHook

    return BaseHook.get_connection(conn_id).get_hook()


def table_rows(conn_id: str, table: str) -> dict[str, dict]:
    """Every row of a table, by ``record_key``, normalized to the records' JSON types."""
    hook = db_hook(conn_id)
    conn = hook.get_conn()
    try:
        cursor = conn.cursor()
        cursor.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
    finally:
        conn.close()
    out = {}
    for values in rows:
        row = dict(zip(names, values, strict=True))
        for name, value in row.items():
            if isinstance(value, datetime):
                row[name] = to_utc_iso(value)
        if "has_attachments" in row:
            row["has_attachments"] = bool(row["has_attachments"])
        row["raw"] = json.loads(row["raw"]) if row["raw"] is not None else None
        out[row.pop("record_key")] = row
    return out


def ground_truth(records, *, include_raw: bool = True) -> dict[str, dict]:
    """The rows the tables must hold: one per key, the last staged version wins."""
    truth = {}
    for record in records:
        row = record.to_dict(include_raw=True)
        row.pop("key")
        row["raw"] = row.get("raw") if include_raw else None
        truth[record.key] = row
    return truth


def sql_operator(conn_id: str, suffix: str, manifests, **kwargs):
    return LinkMsgExportToSqlOperator(
        task_id="export_sql",
        conn_id=conn_id,
        manifests=manifests,
        messages_table=f"msgs{suffix}",
        generated_messages_table=f"gen{suffix}",
        **kwargs,
    )


def test_sql_export_twice_leaves_exactly_the_ground_truth(tmp_path, database):
    dialect, conn_id, suffix = database
    first = messages(500, "linkup")
    reread = messages(200, "linkup", start=400, edit=" (edited)")  # overlaps 100 messages of `first`
    other = messages(150, "connectsafely")
    koneksi = generated(60)
    staged = [
        stage(tmp_path, first, run_id="a", max_records_per_file=180),
        stage(tmp_path, other, run_id="b"),
        stage(tmp_path, reread, run_id="c"),
        stage(tmp_path, koneksi, run_id="d"),
    ]
    for _ in range(2):
        operator = sql_operator(
            conn_id, suffix, [[m.summary()] for m in staged], batch_size=64, include_raw=True
        )
        result, context = run_operator(operator)

    assert result["records"] == 910
    assert result["by_table"] == {f"msgs{suffix}": 850, f"gen{suffix}": 60}
    assert result["tables"] == {"message": f"msgs{suffix}", "generated_message": f"gen{suffix}"}
    assert table_rows(conn_id, f"msgs{suffix}") == ground_truth(first + other + reread)
    assert len(table_rows(conn_id, f"msgs{suffix}")) == 750
    assert table_rows(conn_id, f"gen{suffix}") == ground_truth(koneksi)
    (alias,) = operator.outlets
    events = dict(alias_events(context["outlet_events"][alias]))
    assert set(events) == {
        f"x-linkmsg-sql://{conn_id}/msgs{suffix}",
        f"x-linkmsg-sql://{conn_id}/gen{suffix}",
    }
    assert all(extra["by_table"] == result["by_table"] for extra in events.values())

    lineage = operator.get_openlineage_facets_on_complete(None)
    outputs = sorted((d.namespace, d.name) for d in lineage.outputs)
    if dialect == "postgres":
        port = db_hook(conn_id).get_connection(conn_id).port
        namespace = f"postgres://127.0.0.1:{port}"
        assert outputs == [
            (namespace, f"postgres.public.gen{suffix}"),
            (namespace, f"postgres.public.msgs{suffix}"),
        ]
    else:
        assert outputs == [(f"sqlite://{tmp_path}/warehouse.db", t) for t in ("gen", "msgs")]
    assert [d.name for d in lineage.inputs] == [str(m.directory) for m in staged]


def test_sql_failure_mid_batch_then_rerun_leaves_the_ground_truth(tmp_path, database):
    _, conn_id, suffix = database
    records = messages(700, "linkup")
    manifest = stage(tmp_path, records, run_id="r", include_raw=False)
    part = Path(manifest.part_paths()[0].path)
    good = part.read_bytes()
    lines = good.splitlines(keepends=True)
    bad = json.loads(lines[520])
    bad["direction"] = None  # violates NOT NULL in the middle of the 4th batch (450-599)
    lines[520] = json.dumps(bad).encode() + b"\n"
    part.write_bytes(b"".join(lines))

    operator = sql_operator(conn_id, suffix, manifest.summary(), batch_size=150)
    with pytest.raises(Exception, match=r"(?i)not.null"):
        run_operator(operator)
    rows = table_rows(conn_id, f"msgs{suffix}")
    truth = ground_truth(records, include_raw=False)
    assert rows == {key: truth[key] for key in [r.key for r in records[:450]]}, "3 whole batches, no more"

    part.write_bytes(good)
    run_operator(sql_operator(conn_id, suffix, manifest.summary(), batch_size=150))
    assert table_rows(conn_id, f"msgs{suffix}") == truth


def export_until_killed(conn_id: str, manifest: str, table: str, batch_size: int, started) -> None:
    """Child process: upsert a large staged run, batch by batch, until it is killed."""
    with SqlUpserter(db_hook(conn_id), tables={"message": table}, batch_size=batch_size) as upserter:
        started.set()
        upserter.upsert(iter_records(manifest), record_type="message")


def count_rows(dialect: str, conn_id: str, table: str) -> int:
    hook = db_hook(conn_id)
    if dialect == "sqlite":
        with sqlite3.connect(hook.get_connection(conn_id).host, timeout=10) as conn:
            return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    conn = hook.get_conn()
    try:
        cursor = conn.cursor()  # DB-API: psycopg 3 (postgres provider on 3.x) and psycopg2 (on 2.11)
        cursor.execute(f"SELECT COUNT(*) FROM {table}")
        return cursor.fetchone()[0]
    finally:
        conn.close()


def test_sql_sigkill_mid_export_then_rerun_leaves_the_ground_truth(tmp_path, database):
    dialect, conn_id, suffix = database
    table = f"msgs{suffix}"
    records = messages(10_000, "linkup")
    manifest = stage(tmp_path, records, run_id="big", include_raw=False, max_records_per_file=4_000)
    batch_size = 100
    with SqlUpserter(db_hook(conn_id), tables={"message": table}) as upserter:
        upserter.ensure_table("message")

    started = FORK.Event()
    proc = FORK.Process(
        target=export_until_killed, args=(conn_id, str(manifest.path), table, batch_size, started)
    )
    proc.start()
    try:
        assert started.wait(60), "the export never started"
        deadline = time.monotonic() + 60
        while count_rows(dialect, conn_id, table) < 2 * batch_size:
            assert proc.is_alive(), "the export ended before it could be killed"
            assert time.monotonic() < deadline, "the export made no progress"
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.join()
    assert proc.exitcode == -signal.SIGKILL

    truth = ground_truth(records, include_raw=False)
    rows = table_rows(conn_id, table)
    assert 0 < len(rows) < len(records)
    assert len(rows) % batch_size == 0, "a batch is committed whole or not at all"
    assert rows == {r.key: truth[r.key] for r in records[: len(rows)]}

    run_operator(sql_operator(conn_id, suffix, manifest.summary(), batch_size=5_000))
    assert table_rows(conn_id, table) == truth


@pytest.mark.parametrize("record_type", list(RECORD_TYPES))
def test_sql_empty_manifest_creates_the_table(tmp_path, sqlite_conn_id, record_type):
    with StagingWriter(tmp_path, vendor="koneksi", record_type=record_type, run_id="empty") as writer:
        pass
    result, _ = run_operator(sql_operator(sqlite_conn_id, "", writer.close().summary()))
    assert result["records"] == 0
    table = "msgs" if record_type == "message" else "gen"
    assert table_rows(sqlite_conn_id, table) == {}
    assert Manifest.load(writer.manifest_path).record_count == 0


# ---- one row per key in a file destination ----------------------------------------------------------------
EXT = {"jsonl": ".jsonl", "csv": ".csv", "parquet": ".parquet"}


def destination_records(destination: Path, file_format: str, record_cls) -> list:
    """Every record of every data file under ``destination``, as a reader globbing the folder gets them."""
    paths = sorted(p for p in data_files(destination) if p.name.endswith(EXT[file_format]))
    return [r for p in paths for r in READERS[file_format](str(p), record_cls)]


def staging_clock(monkeypatch, iso: str) -> None:
    """Make the staging writer close its runs at ``iso`` (its manifests' ``created_at``)."""
    import airflow_provider_linkmsg.io.manifest as manifest_module

    class Frozen(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(tz)

    monkeypatch.setattr(manifest_module, "datetime", Frozen)


def export_files(manifests, destination: Path, file_format: str, **context_extra):
    operator = LinkMsgExportToFilesOperator(
        task_id="to_files", manifests=manifests, destination=str(destination), file_format=file_format
    )
    context = {"outlet_events": outlet_event_accessors(), **context_extra}
    result = operator.execute(context)
    json.dumps(result)
    return result


@pytest.mark.parametrize("file_format", ["jsonl", "csv", "parquet"])
def test_koneksi_pending_then_final_leaves_one_row_per_lead_and_type(sandbox_factory, tmp_path, file_format):
    from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
    from airflow_provider_linkmsg.operators.koneksi import KoneksiRetrieveMessagesOperator
    from tests.fixtures.koneksi import make_payload

    sandbox = sandbox_factory(seed=3, sizes={"koneksi": {"polls_until_complete": 3, "leads": 5}})
    request_id = KoneksiHook().request_message_generation(make_payload(sandbox))

    def retrieve(task_id: str, **kwargs) -> dict:
        ti = SimpleNamespace(dag_id="koneksi", task_id=task_id, run_id="run-1", map_index=-1)
        return KoneksiRetrieveMessagesOperator(
            task_id=task_id, secure_request_id=request_id, staging_path=str(tmp_path / "staging"), **kwargs
        ).execute({"ti": ti, "run_id": "run-1"})

    partial = retrieve("retrieve_partial", allow_partial=True)
    assert partial["generation_status"] == "in_progress" and partial["pending"] > 0
    while (final := retrieve("retrieve_final", allow_partial=True))["generation_status"] != "complete":
        time.sleep(0.05)
    destination = tmp_path / "out"

    export_files(partial, destination, file_format)
    result = export_files(final, destination, file_format)
    truth = sorted(iter_records(final["manifest"]), key=lambda r: r.key)

    def assert_one_final_row_per_key() -> None:
        rows = destination_records(destination, file_format, GeneratedMessage)
        assert len(rows) == len({r.key for r in rows}) == len(truth), "one row per lead and message type"
        assert {r.status for r in rows} <= {"generated", "failed"}, "the final version wins over pending"
        assert sorted(rows, key=lambda r: r.key) == truth

    assert_one_final_row_per_key()
    assert result["superseded"] == partial["records"]
    again = export_files(partial, destination, file_format)  # the older run exported again: it stays out
    assert_one_final_row_per_key()
    assert again["older"] == partial["records"] and again["files"] == []


@pytest.mark.parametrize("file_format", ["jsonl", "parquet"])
def test_a_run_restaged_after_midnight_utc_exports_into_its_own_date_once(tmp_path, monkeypatch, file_format):
    inbox, destination = messages(15, "connectsafely"), tmp_path / "out"
    data_date = {"logical_date": datetime(2024, 5, 1, 6, tzinfo=UTC)}
    staging_clock(monkeypatch, "2024-05-01T23:59:00.000000Z")
    first = stage(tmp_path / "staging", inbox[:10], run_id="scheduled__2024-05-01")
    export_files(first.summary(), destination, file_format, **data_date)
    # the task is cleared and runs again after midnight: it stages the run again, with 5 more messages
    staging_clock(monkeypatch, "2024-05-02T00:01:00.000000Z")
    second = stage(tmp_path / "staging", inbox, run_id="scheduled__2024-05-01")
    result = export_files(second.summary(), destination, file_format, **data_date)

    assert (first.created_at[:10], second.created_at[:10]) == ("2024-05-01", "2024-05-02")
    rows = destination_records(destination, file_format, Message)
    assert sorted(r.key for r in rows) == sorted(m.key for m in inbox), "15 rows for 15 messages"
    assert {p.parent.name for p in data_files(destination)} == {"date=2024-05-01"}
    assert result["partition_date"] == "2024-05-01"


def test_without_a_data_date_a_restaged_run_still_leaves_one_row_per_key(tmp_path, monkeypatch):
    """Outside a DAG run the partition is the staging day: the re-staged run moves there, whole and once."""
    inbox, destination = messages(15, "linkup"), tmp_path / "out"
    for now, count in (("2024-05-01T23:59:00.000000Z", 10), ("2024-05-02T00:01:00.000000Z", 15)):
        staging_clock(monkeypatch, now)
        result = export_files(
            stage(tmp_path / "staging", inbox[:count], run_id="r").summary(), destination, "jsonl"
        )
    rows = destination_records(destination, "jsonl", Message)
    assert sorted(r.key for r in rows) == sorted(m.key for m in inbox)
    assert {p.parent.name for p in data_files(destination)} == {"date=2024-05-02"}
    assert result["files_removed"] == 1
    assert [p.name for p in (destination / "_linkmsg_keys").rglob("*.keys")] == ["r-part-00000.jsonl.keys"]


def test_records_of_one_key_across_runs_and_partitions_end_up_once_in_the_latest_version(
    tmp_path, monkeypatch
):
    """Edited messages staged by later runs, into other date partitions: pyarrow's dataset reads each key once."""
    import pyarrow.dataset as ds

    destination = tmp_path / "out"
    versions = [messages(40, "linkup", start=0, edit=f" v{v}") for v in range(3)]
    for v, batch in enumerate(versions):  # run v re-stages messages 0-39 and 20 new ones, a day later each
        staging_clock(monkeypatch, f"2024-05-0{v + 1}T12:00:00.000000Z")
        staged = stage(
            tmp_path / "staging", batch + messages(20, "linkup", start=100 + 20 * v), run_id=f"r{v}"
        )
        export_files(
            staged.summary(), destination, "parquet", logical_date=datetime(2024, 5, v + 1, tzinfo=UTC)
        )

    table = ds.dataset(str(destination), format="parquet", partitioning="hive").to_table()
    keys = table.column("key").to_pylist()
    assert len(keys) == len(set(keys)) == 40 + 60
    texts = dict(zip(keys, table.column("text").to_pylist(), strict=True))
    assert all(texts[m.key] == m.text for m in versions[2]), "the latest staged version wins"


def export_with_fault(manifest: Manifest, destination: str, fail_at: int | None, how: str, out: str) -> None:
    """Child process: export ``manifest`` to Parquet, failing at file-system step ``fail_at``; ``out``: steps."""
    import builtins

    steps: list[str] = []
    real = {"open": builtins.open, "replace": os.replace, "remove": os.remove}

    def step(op: str, path) -> None:
        if len(steps) == fail_at:
            if how == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            raise OSError(28, "No space left on device (injected)", str(path))
        steps.append(f"{op} {os.path.basename(os.fsdecode(path))}")

    def faulty_open(file, mode="r", *args, **kwargs):
        if not isinstance(file, int) and any(c in mode for c in "wax+") and "linkmsg-keys-" not in str(file):
            step("open", file)
        return real["open"](file, mode, *args, **kwargs)

    builtins.open = faulty_open
    os.replace = lambda src, dst, *a, **k: (step("replace", dst), real["replace"](src, dst, *a, **k))[1]
    os.remove = lambda path, *a, **k: (step("remove", path), real["remove"](path, *a, **k))[1]
    error = None
    try:
        export_manifest(manifest, to_path(destination), file_format="parquet")
    except OSError as exc:
        error = str(exc)
    finally:
        builtins.open, os.replace, os.remove = real["open"], real["replace"], real["remove"]
    with open(out, "w") as f:
        json.dump({"steps": steps, "error": error}, f)


@pytest.mark.parametrize("how", ["kill", "oserror"])
def test_an_export_failing_at_any_step_then_retried_holds_one_row_per_key_and_loses_none(tmp_path, how):
    """Pending rows exported, then the final run: a fault at each step of its export, then the retry."""
    pending = [dataclasses.replace(r, status="pending", text=None) for r in generated(24)]
    final = generated(24) + generated(30)[24:]  # the final run also brings 6 new rows
    older = stage(tmp_path / "staging", pending, run_id="partial", max_records_per_file=10)
    newer = stage(tmp_path / "staging", final, run_id="final", max_records_per_file=10)
    base = tmp_path / "base"
    export_manifest(older, to_path(str(base)), file_format="parquet")
    record = str(tmp_path / "record.json")
    shutil.copytree(base, tmp_path / "record")
    export_with_fault(newer, str(tmp_path / "record"), None, how, record)
    with open(record) as f:
        trace = json.load(f)["steps"]
    assert any(s.startswith("remove") for s in trace) and len(trace) >= 10, trace

    truth = sorted(final, key=lambda r: r.key)
    for k, step in enumerate(trace):
        destination, out = tmp_path / f"{how}-{k}", str(tmp_path / f"{how}-{k}.json")
        shutil.copytree(base, destination)
        proc = FORK.Process(target=export_with_fault, args=(newer, str(destination), k, how, out))
        proc.start()
        proc.join(60)
        assert proc.exitcode == (-signal.SIGKILL if how == "kill" else 0), f"step {k} ({step})"
        rows = {r.key for r in destination_records(destination, "parquet", GeneratedMessage)}
        assert rows >= {r.key for r in pending}, f"a {how} at step {k} ({step}) lost a record"

        export_manifest(newer, to_path(str(destination)), file_format="parquet")  # the retry

        rows = destination_records(destination, "parquet", GeneratedMessage)
        assert sorted(rows, key=lambda r: r.key) == truth, f"after a {how} at step {k} ({step})"


def test_two_exports_at_once_into_one_destination_keep_one_row_per_key(tmp_path, monkeypatch):
    """Each export holds the destination's lease from reading the key files to removing superseded keys."""
    import contextlib
    import threading

    from airflow_provider_linkmsg.io import file_export

    records = messages(40, "connectsafely")
    first = stage(tmp_path / "staging", records, run_id="run-a")
    second = stage(tmp_path / "staging", records, run_id="run-b")  # a full refresh of the same keys
    destination = to_path(str(tmp_path / "out"))
    scanned = threading.Barrier(2)
    listing = file_export.key_files

    def key_files_then_meet(*args, **kwargs):
        yield from listing(*args, **kwargs)
        # without the lease both exports read the key files before either writes: they meet here; with
        # it the other export waits for the lease, and nobody comes to meet
        with contextlib.suppress(threading.BrokenBarrierError):
            scanned.wait(timeout=3)

    monkeypatch.setattr(file_export, "key_files", key_files_then_meet)
    errors = []

    def export(manifest):
        try:
            export_manifest(manifest, destination, partition_date="2024-05-01")
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=export, args=(m,)) for m in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    keys = [
        json.loads(line)["key"]
        for path in data_files(tmp_path / "out")
        for line in path.read_text(encoding="utf-8").split("\n")
        if line.strip()
    ]
    assert len(keys) == len(records) and len(set(keys)) == len(records)
    assert not list((tmp_path / "out" / "_linkmsg_keys").glob("*.lease"))  # released
