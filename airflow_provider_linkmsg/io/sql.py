"""
Records into any SQL database that has an Airflow ``DbApiHook``: one table per record type, upsert by key.

Columns are the record's fields, in order, after the key (``record_key``, because ``key`` is reserved in
some dialects). Rows are upserted in batches, one transaction per batch, so a re-run or a retry after a
crash leaves exactly one row per record:

- PostgreSQL and SQLite (3.24+): ``INSERT ... ON CONFLICT (record_key) DO UPDATE``;
- MySQL and MariaDB: ``INSERT ... ON DUPLICATE KEY UPDATE``;
- any other database: ``DELETE`` the batch's keys, then ``INSERT`` them, in the same transaction.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.io.extras import require_sql_provider
from airflow_provider_linkmsg.records import RECORD_TYPES, GeneratedMessage, Message

if TYPE_CHECKING:
    from airflow.providers.common.sql.hooks.sql import DbApiHook

    from airflow_provider_linkmsg.engine.progress import Progress

DEFAULT_TABLES = {
    Message.record_type: "linkmsg_messages",
    GeneratedMessage.record_type: "linkmsg_generated_messages",
}
KEY_COLUMN = "record_key"
#: the asset URI scheme of SQL tables (one asset per table; see :func:`sql_table_uri`)
SQL_ASSET_SCHEME = "x-linkmsg-sql"

_KINDS = {"sent_at": "timestamp", "retrieved_at": "timestamp", "has_attachments": "bool", "step": "int"}
_TYPES = {
    "postgresql": {"key": "TEXT", "timestamp": "TIMESTAMP WITH TIME ZONE", "bool": "BOOLEAN"},
    "sqlite": {"key": "TEXT", "timestamp": "TEXT", "bool": "BOOLEAN"},
}
_GENERIC_TYPES = {
    "key": "VARCHAR(700)",
    "text": "TEXT",
    "timestamp": "VARCHAR(32)",
    "bool": "BOOLEAN",
    "int": "INTEGER",
    "json": "TEXT",
}
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True)
class Column:
    """
    One column of an export (files and SQL).

    :param name: the record's field name (``key`` for the record key).
    :param kind: ``key``, ``text``, ``timestamp`` (UTC ISO-8601), ``bool``, ``int`` or ``json`` (``raw``).
    :param nullable: whether the field may be ``None``.
    """

    name: str
    kind: str
    nullable: bool

    @property
    def sql_name(self) -> str:
        """The column's name in SQL tables."""
        return KEY_COLUMN if self.name == "key" else self.name

    def sql_type(self, dialect: str) -> str:
        """
        The column's SQL type in ``dialect``.

        :param dialect: SQLAlchemy dialect name (``postgresql``, ``sqlite``, ``mysql`` ...).
        """
        return _TYPES.get(dialect, {}).get(self.kind) or _GENERIC_TYPES[self.kind]


@cache
def columns(record_type: str) -> tuple[Column, ...]:
    """
    The columns of a record type: ``key`` then every field of the record, ``raw`` last.

    :param record_type: ``message`` or ``generated_message``.
    """
    fields = dataclasses.fields(RECORD_TYPES[record_type])
    cols = [Column("key", "key", nullable=False)]
    for f in fields:
        kind = "json" if f.name == "raw" else _KINDS.get(f.name, "text")
        cols.append(Column(f.name, kind, nullable=f.default is None))
    return tuple(sorted(cols, key=lambda c: c.kind == "json"))


def sql_table_uri(conn_id: str, table: str) -> str:
    """
    The one asset URI of a table that the SQL export writes: ``x-linkmsg-sql://{conn_id}/{table}``.

    Built from what a DAG file knows when it is parsed (the connection id, not its host), so the same
    table reached through two connection ids has two URIs: use one connection id per database.

    :param conn_id: the database connection.
    :param table: the table as given to the export (``table`` or ``schema.table``).
    """
    return f"{SQL_ASSET_SCHEME}://{conn_id}/{table}"


def sql_asset_alias(conn_id: str) -> str:
    """
    The name of the asset alias a SQL export declares by default: ``linkmsg-sql:{conn_id}``.

    Through it, an export announces :func:`sql_table_uri` of each table it wrote, and of no other.

    :param conn_id: the database connection.
    """
    return f"linkmsg-sql:{conn_id}"


def check_sql_connection(conn_id: str) -> None:
    """
    Refuse, before anything is written, a connection whose database provider is not installed: the error
    names the extra (``pip install "airflow-provider-linkmsg[postgres]"``) or the provider package.

    :param conn_id: the database connection.
    """
    from airflow.providers.common.compat.sdk import BaseHook

    require_sql_provider(BaseHook.get_connection(conn_id))


def check_table_name(table: str, field: str = "table") -> str:
    """
    Refuse table names that are not plain identifiers (``table`` or ``schema.table``).

    :param table: the table name given by the user.
    :param field: the argument that named it, for the error.
    """
    if not isinstance(table, str) or not _TABLE_NAME.match(table):
        raise LinkMsgValidationError(
            f"{field} {table!r} must be an identifier (letters, digits, _), optionally schema-qualified",
            field=field,
        )
    return table


def create_table_sql(table: str, record_type: str, dialect: str) -> list[str]:
    """
    ``CREATE TABLE IF NOT EXISTS`` (and, where supported, an index for conversation reads).

    :param table: table name.
    :param record_type: ``message`` or ``generated_message``.
    :param dialect: SQLAlchemy dialect name.
    """
    check_table_name(table)
    cols = ",\n  ".join(
        f"{c.sql_name} {c.sql_type(dialect)}{'' if c.nullable else ' NOT NULL'}"
        + (" PRIMARY KEY" if c.kind == "key" else "")
        for c in columns(record_type)
    )
    statements = [f"CREATE TABLE IF NOT EXISTS {table} (\n  {cols}\n)"]
    if dialect in ("postgresql", "sqlite"):
        index_on = (
            "vendor, account_id, conversation_id, sent_at"
            if record_type == Message.record_type
            else "request_id, lead_id"
        )
        name = table.rsplit(".", 1)[-1] + "_lookup_idx"
        statements.append(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({index_on})")
    return statements


def upsert_sql(table: str, record_type: str, dialect: str, placeholder: str = "%s") -> str:
    """
    The statement that inserts one row or updates the row with the same key.

    For dialects without an upsert this is the plain ``INSERT``; :class:`SqlUpserter` deletes the batch's
    keys first.

    :param table: table name.
    :param record_type: ``message`` or ``generated_message``.
    :param dialect: SQLAlchemy dialect name.
    :param placeholder: the driver's parameter marker (``%s`` or ``?``).
    """
    check_table_name(table)
    names = [c.sql_name for c in columns(record_type)]
    insert = f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join([placeholder] * len(names))})"
    others = names[1:]
    if dialect in ("postgresql", "sqlite"):
        updates = ", ".join(f"{n} = EXCLUDED.{n}" for n in others)
        return f"{insert} ON CONFLICT ({KEY_COLUMN}) DO UPDATE SET {updates}"
    if dialect in ("mysql", "mariadb"):
        return f"{insert} ON DUPLICATE KEY UPDATE {', '.join(f'{n} = VALUES({n})' for n in others)}"
    return insert


def record_row(record: Message | GeneratedMessage, *, include_raw: bool = False) -> tuple[Any, ...]:
    """
    The values of one row, in :func:`columns` order (``raw`` as JSON text, or ``None``).

    :param record: a Message or GeneratedMessage.
    :param include_raw: keep the vendor's raw JSON.
    """
    values: list[Any] = [record.key]
    for col in columns(record.record_type)[1:]:
        value = getattr(record, col.name)
        if col.kind == "json":
            value = json.dumps(value, ensure_ascii=False) if include_raw and value is not None else None
        values.append(value)
    return tuple(values)


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class SqlUpserter:
    """
    Upsert records through a ``DbApiHook`` connection, in batches of one transaction each.

    Use as a context manager (it opens one connection and closes it)::

        with SqlUpserter(hook) as upserter:
            upserter.upsert(iter_records(manifest), record_type=manifest.record_type)

    :param hook: any common-sql ``DbApiHook`` (Postgres, SQLite, MySQL ...).
    :param tables: table per record type (default ``linkmsg_messages``, ``linkmsg_generated_messages``).
    :param batch_size: rows per transaction.
    :param create_table: create each table (``IF NOT EXISTS``) before its first batch.
    :param include_raw: fill the ``raw`` column with the vendor's JSON (else ``NULL``).
    """

    def __init__(
        self,
        hook: DbApiHook,
        *,
        tables: dict[str, str] | None = None,
        batch_size: int = 1000,
        create_table: bool = True,
        include_raw: bool = False,
    ) -> None:
        if batch_size < 1:
            raise LinkMsgValidationError(
                f"batch_size must be at least 1, got {batch_size}", field="batch_size"
            )
        self.hook = hook
        self.tables = {**DEFAULT_TABLES, **(tables or {})}
        for table in self.tables.values():
            check_table_name(table)
        self.batch_size = batch_size
        self.create_table = create_table
        self.include_raw = include_raw
        self.dialect = hook.dialect_name
        self._conn: Any = None
        self._created: set[str] = set()

    def __enter__(self) -> SqlUpserter:
        self._conn = self.hook.get_conn()
        if getattr(self.hook, "supports_autocommit", False):
            self.hook.set_autocommit(self._conn, False)
        return self

    def __exit__(self, *exc_info: object) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _run_in_transaction(self, statements: Iterable[tuple[str, list[tuple] | None]]) -> None:
        cursor = self._conn.cursor()
        try:
            for sql, rows in statements:
                if rows is None:
                    cursor.execute(sql)
                else:
                    cursor.executemany(sql, rows)
            self._conn.commit()
        except BaseException:
            self._conn.rollback()
            raise
        finally:
            cursor.close()

    def ensure_table(self, record_type: str) -> str:
        """
        Create the table of ``record_type`` if missing (once per upserter); returns its name.

        :param record_type: ``message`` or ``generated_message``.
        """
        table = self.tables[record_type]
        if self.create_table and table not in self._created:
            statements = create_table_sql(table, record_type, self.dialect)
            self._run_in_transaction((sql, None) for sql in statements)
            self._created.add(table)
        return table

    def upsert(
        self,
        records: Iterable[Message | GeneratedMessage],
        *,
        record_type: str,
        progress: Progress | None = None,
    ) -> int:
        """
        Upsert a stream of records of one type; returns how many were written.

        Each batch is one transaction: a failure rolls back the batch in flight and keeps the batches
        before it, and running the same records again converges to one row per key.

        :param records: records of ``record_type`` (any iterable; consumed once, batch by batch).
        :param record_type: ``message`` or ``generated_message``.
        :param progress: told of each batch committed and its rows.
        """
        if self._conn is None:
            raise RuntimeError("use SqlUpserter as a context manager")
        table = self.ensure_table(record_type)
        sql = upsert_sql(table, record_type, self.dialect, self.hook.placeholder)
        native_upsert = self.dialect in ("postgresql", "sqlite", "mysql", "mariadb")
        delete = f"DELETE FROM {table} WHERE {KEY_COLUMN} = {self.hook.placeholder}"
        count = 0
        rows = (record_row(r, include_raw=self.include_raw) for r in records)
        for batch in _batches(rows, self.batch_size):
            if native_upsert:
                self._run_in_transaction([(sql, batch)])
            else:
                unique = list({row[0]: row for row in batch}.values())
                self._run_in_transaction([(delete, [(row[0],) for row in unique]), (sql, unique)])
            count += len(batch)
            if progress is not None:
                progress.advance(records=len(batch))
        return count
