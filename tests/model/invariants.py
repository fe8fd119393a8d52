"""
What must hold after every run and export of the model suite, read back independently of the code under test:
exported files and SQL rows, the staged manifests on disk, and the state files next to them.
"""

from __future__ import annotations

import glob
import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable
from datetime import datetime
from typing import Any

from airflow_provider_linkmsg.io.staging import iter_records
from airflow_provider_linkmsg.records import Message, to_utc_iso
from tests.fixtures.suites import jsonl_records, sqlite_records

SQL_TABLE = "linkmsg_messages"


def exported_files(destination: str) -> list[Message]:
    """Every record of every exported JSON Lines file under ``destination``."""
    paths = sorted(
        p
        for pattern in ("**/*.jsonl", "**/*.jsonl.gz")
        for p in glob.glob(os.path.join(destination, pattern), recursive=True)
        if not os.path.basename(p).startswith(".")
    )
    return jsonl_records(paths, Message)


def exported_rows(database: str) -> list[Message]:
    if not os.path.exists(database):
        return []
    return sqlite_records(database, SQL_TABLE, Message)


def postgres_rows(conn_id: str, table: str) -> list[Message]:
    """Every row of an exported PostgreSQL table, as records (``record_key`` checked against the key)."""
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=conn_id)
    with hook.get_conn() as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT to_regclass('{table}')")
        if cursor.fetchone()[0] is None:
            return []
        cursor.execute(f"SELECT * FROM {table}")
        names = [d[0] for d in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    records = []
    for row in rows:
        key = row.pop("record_key")
        for name, value in row.items():
            if isinstance(value, datetime):  # TIMESTAMPTZ columns come back as datetimes
                row[name] = to_utc_iso(value)
        raw = row.get("raw")
        row["raw"] = json.loads(raw) if isinstance(raw, str) else raw
        record = Message.from_dict(row)
        assert record.key == key, f"row {key} holds the record of {record.key}"
        records.append(record)
    return records


def drop_postgres_table(conn_id: str, table: str) -> None:
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    PostgresHook(postgres_conn_id=conn_id).run(f"DROP TABLE IF EXISTS {table}")


def check_exported(
    where: str,
    records: Iterable[Message],
    truth: dict[str, Hashable],
    due: set[str],
    project: Callable[[Message], Hashable],
) -> None:
    """
    ``records`` hold no key twice, nothing the vendor does not show, and every message that is due.

    :param truth: what the vendor shows, by key (projected as ``project`` projects a record).
    :param due: the keys a correct engine must have exported by now (all of ``truth`` but messages whose
        conversation the vendor's listing does not show as changed yet).
    """
    records = list(records)
    twice = sorted(key for key, n in Counter(r.key for r in records).items() if n > 1)
    assert not twice, f"{where}: {len(twice)} key(s) exported twice, e.g. {twice[:3]}"
    got = {r.key: r for r in records}
    extra = sorted(set(got) - set(truth))
    assert not extra, f"{where}: {len(extra)} record(s) the vendor does not show, e.g. {extra[:3]}"
    wrong = sorted(k for k, r in got.items() if project(r) != truth[k])
    assert not wrong, f"{where}: {len(wrong)} record(s) differ from the vendor's, e.g. {wrong[:3]}"
    missing = sorted(due - set(got))
    assert not missing, (
        f"{where}: {len(missing)} message(s) the vendor shows were never exported, e.g. "
        f"{[_describe(truth[k]) for k in missing[:3]]}"
    )


def _describe(value: Hashable) -> str:
    if isinstance(value, Message):
        return f"{value.conversation_id[-24:]} {value.message_id[-16:]} at {value.sent_at}"
    return str(value)[:160]


def check_staged_once(results: list[dict[str, Any]]) -> None:
    """Runs of one consumer at the same time stage no message twice between them."""
    seen: dict[str, str] = {}
    twice = []
    for result in results:
        for record in iter_records(result["manifest"]) if result.get("records") else ():
            if record.key in seen and seen[record.key] != result["manifest"]:
                twice.append(record.key)
            seen.setdefault(record.key, result["manifest"])
    assert not twice, f"concurrent runs staged {len(twice)} message(s) twice, e.g. {sorted(twice)[:3]}"


def staged_by_conversation(root: str) -> dict[str, dict[str, str]]:
    """Durable staged messages (every ``manifest.json`` under ``root``): conversation → {message id: sent_at}."""
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for manifest in glob.glob(os.path.join(root, "**", "manifest.json"), recursive=True):
        if f"{os.sep}_state{os.sep}" in manifest:
            continue
        for record in iter_records(manifest):
            out[record.conversation_id][record.message_id] = record.sent_at
    return out


def watermarks(root: str, vendor: str) -> dict[str, dict[str, Any]]:
    """
    Committed watermarks of ``vendor``: every ``{"watermarks": {conversation: {...}}}`` document under
    ``{root}/_state`` whose path names the vendor (whatever the layout of consumers and accounts).
    """
    out: dict[str, dict[str, Any]] = {}
    for path in glob.glob(os.path.join(root, "_state", "**", "*.json"), recursive=True):
        parts = os.path.relpath(path, os.path.join(root, "_state")).split(os.sep)
        if vendor not in parts[:-1]:
            continue
        try:
            with open(path) as f:
                document = json.load(f)
        except (OSError, ValueError):
            continue  # not ours to judge: a torn file would fail the next run, which the model sees
        for conversation, mark in (document.get("watermarks") or {}).items():
            if isinstance(mark, dict):
                out[f"{path}::{conversation}"] = {"conversation": conversation, **mark}
    return out


def check_watermarks(root: str, vendor: str, *, expect_some: bool) -> None:
    """No watermark ahead of durable data: its time and its recent ids are those of staged messages."""
    marks = watermarks(root, vendor)
    if expect_some:
        assert marks, (
            f"no {vendor} watermark found under {root}/_state after a run that staged messages: the state "
            "layout changed, update tests/model/invariants.py"
        )
    staged = staged_by_conversation(root)
    for where, mark in marks.items():
        conversation, sent_at = mark["conversation"], mark.get("sent_at")
        durable = staged.get(conversation, {})
        if sent_at:
            newest = max(durable.values(), default=None)
            assert newest is not None and sent_at <= newest, (
                f"{vendor} watermark of {conversation} says {sent_at} is staged, but the newest durable "
                f"message is {newest} ({where})"
            )
        recent = mark.get("recent") or {}
        ahead = sorted(set(recent) - set(durable))
        assert not ahead, f"{vendor} watermark of {conversation} names messages never staged: {ahead[:3]}"
