"""
Export staged records to files (JSON Lines, CSV, Parquet) on any object store, or to any SQL database.

Both operators read one or more staging manifests (paths, the XCom values of staging operators, or the
list a mapped staging task returns), stream the records, and return a small XCom value: paths, counts and
the destination, never messages. Each declares its destination as an Airflow Asset and puts the counts in
the asset event's ``extra``, so downstream DAGs can be scheduled on new messages.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowNotFoundException,
    AirflowSkipException,
    Asset,
    AssetAlias,
    BaseOperator,
    ObjectStoragePath,
)

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.io.sql import (
    DEFAULT_TABLES,
    check_sql_connection,
    check_table_name,
    sql_asset_alias,
    sql_table_uri,
)
from airflow_provider_linkmsg.operators.lineage import path_dataset
from airflow_provider_linkmsg.records import GeneratedMessage, Message

# common.sql, the file writers (pyarrow for Parquet), staging and the checks are imported where they are
# used: DAG files import this module, and common.sql alone costs more than a DAG file may.
if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.providers.openlineage.extractors import OperatorLineage

    from airflow_provider_linkmsg.io.staging import Manifest


def resolve_manifests(value: Any, conn_id: str | None = None) -> list[Manifest]:
    """
    Load the staging manifests that ``value`` points at, in order and without duplicates.

    Accepts a path (``str`` or ObjectStoragePath) of a ``manifest.json`` or its run directory, a
    :class:`Manifest`, a dict with a ``manifest`` (or ``path``) key and optional ``conn_id`` (the XCom value
    of a staging operator), and any nesting of lists of those (a mapped task's XCom). A string that holds
    a rendered list or dict (``"[{'manifest': ...}]"``) is parsed.

    :param value: what to load.
    :param conn_id: connection of the staging store for paths given without one.
    """
    from airflow_provider_linkmsg.io.staging import Manifest
    from airflow_provider_linkmsg.validation import load_manifest, parse_literal

    found: dict[str, Manifest] = {}

    def visit(item: Any, item_conn_id: str | None) -> None:
        if item is None:
            return
        if isinstance(item, Manifest):
            found.setdefault(str(item.path), item)
        elif isinstance(item, ObjectStoragePath):
            found.setdefault(str(item), Manifest.load(item))
        elif isinstance(item, str):
            text = item.strip()
            if text[:1] in ("[", "{"):
                visit(parse_literal(text, field="manifests"), item_conn_id)
            elif text:
                manifest = load_manifest(text, item_conn_id)
                found.setdefault(str(manifest.path), manifest)
        elif isinstance(item, Mapping):
            path = item.get("manifest") or item.get("path")
            if not path:
                raise LinkMsgValidationError(
                    f"a manifest reference needs a 'manifest' or 'path' key, got {dict(item)!r}",
                    field="manifests",
                )
            visit(path, item.get("conn_id") or item_conn_id)
        elif isinstance(item, Iterable):
            for element in item:
                visit(element, item_conn_id)
        else:
            raise LinkMsgValidationError(
                f"cannot read a staging manifest from {type(item).__name__}: {item!r}; give a manifest path, "
                "a staging operator's XCom value or a list of them",
                field="manifests",
            )

    visit(value, conn_id)
    return list(found.values())


def _counts(manifests: list[Manifest]) -> dict[str, Any]:
    by_vendor: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    for manifest in manifests:
        by_vendor[manifest.vendor] += manifest.record_count
        by_type[manifest.record_type] += manifest.record_count
    return {
        "records": sum(by_vendor.values()),
        "manifests": len(manifests),
        "by_vendor": dict(by_vendor),
        "by_record_type": dict(by_type),
    }


def run_data_date(context: Context | Mapping[str, Any]) -> str | None:
    """
    The data date (``YYYY-MM-DD``, UTC) of the DAG run in ``context``: its logical date (``ds``), else the
    start of its data interval, else the time it runs after (Airflow 3 runs without a logical date).
    ``None`` outside a DAG run.

    :param context: the task's context.
    """
    dag_run = context.get("dag_run")
    for value in (
        context.get("logical_date"),
        context.get("data_interval_start"),
        getattr(dag_run, "run_after", None),
    ):
        if value is not None:
            return value.astimezone(UTC).date().isoformat()
    return None


def _is_templated(value: Any) -> bool:
    return not isinstance(value, str | ObjectStoragePath) or any(t in str(value) for t in ("{{", "{%"))


def destination_uri(destination: str | ObjectStoragePath) -> str:
    """
    The asset URI of a file destination: ``file:///abs/path`` for local paths, else the URL without the
    connection id (``s3://bucket/prefix``).

    :param destination: the export's root, as given to the operator.
    """
    parts = urlsplit(str(destination))
    if not parts.scheme:
        return "file://" + os.path.abspath(parts.path)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path.rstrip('/')}"


def _set_outlet_events(operator: BaseOperator, context: Context, extra: dict[str, Any], *uris: str) -> None:
    for outlet in operator.outlets:
        if isinstance(outlet, Asset):
            context["outlet_events"][outlet].extra = dict(extra)
        elif isinstance(outlet, AssetAlias):
            for uri in uris:
                context["outlet_events"][outlet].add(Asset(uri), extra=_alias_event_extra(extra))


def _alias_event_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """
    An alias event's extra. Airflow 2 and 3 before 3.2 key these events by ``frozenset(extra.items())``, so
    there nested values (dicts, lists) travel as JSON text; later lines take the extra as it is.
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_2_PLUS

    if AIRFLOW_V_3_2_PLUS:
        return dict(extra)
    return {k: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v for k, v in extra.items()}


def _ol_dataset(path: ObjectStoragePath):
    return path_dataset(path)  # one naming of paths for every operator (operators/lineage.py)


class LinkMsgExportToFilesOperator(BaseOperator):
    """
    Export staged records to JSON Lines, CSV or Parquet files on any object store.

    Each staged part file becomes one file under
    ``{destination}/vendor={vendor}/date={YYYY-MM-DD}/{run}-part-{n}.{ext}``, written atomically; names
    derive from the staging run and the date is the DAG run's data date, so exporting again (a retry, a
    cleared run, after midnight too) overwrites instead of duplicating.

    The destination holds one row per record key: the latest staged version of a record wins (Koneksi's
    final retrieve over an ``allow_partial`` one, a re-staged run over its earlier export). An export
    removes the keys it brings from the files that held them, and leaves out records the destination
    already holds in a newer version; keys are kept on disk (``{destination}/_linkmsg_keys/``, ignored by
    Spark, pandas and pyarrow datasets), so memory stays bounded. Exports into one destination should run
    one at a time: two at the very same moment can leave a record twice (never lose one) until the next.

    Without ``outlets``, the operator declares ``Asset(destination)`` (when the destination is not
    templated); the asset event's ``extra`` holds ``records``, ``manifests``, ``files``, ``by_vendor``,
    ``by_record_type``, ``destination`` and ``format``.

    :param manifests: staging manifests: a path, a staging operator's XCom value, or a list (also nested,
        as a mapped task returns).
    :param destination: root of the export (``/data/out``, ``s3://bucket/prefix``, ``gs://...`` ...).
    :param file_format: ``jsonl`` (default), ``csv`` or ``parquet`` (needs the ``parquet`` extra).
    :param compression: ``gzip`` for JSON Lines and CSV; a Parquet codec (default ``snappy``, ``zstd``,
        ``none`` ...) for Parquet.
    :param destination_conn_id: connection of the destination store (``aws_default`` ...).
    :param staging_conn_id: connection of the staging store, for manifest paths given without one.
    :param include_raw: keep the vendor's raw JSON (when it was staged).
    :param partition_date: ``YYYY-MM-DD`` of the ``date=`` partition; defaults to the DAG run's data date
        (its logical date, else its data interval's start, else its ``run_after``; the staging day outside
        a DAG run).
    :param batch_size: records per Parquet row group.
    :param progress_seconds: seconds between progress lines while exporting (1 to 30, 10 by default):
        files written and left, rows written of the staged total.
    :return: ``{"destination", "format", "compression", "records", "manifests", "files": [{"path",
        "records"}], "by_vendor", "by_record_type", "superseded", "older", "files_removed"}``:
        ``superseded`` rows removed from earlier files, ``older`` staged records left out because the
        destination holds a newer version, ``files_removed`` files deleted (emptied or stale).
    """

    template_fields: Sequence[str] = (
        "manifests",
        "destination",
        "file_format",
        "compression",
        "destination_conn_id",
        "staging_conn_id",
        "partition_date",
    )

    def __init__(
        self,
        *,
        manifests: Any,
        destination: str | ObjectStoragePath,
        file_format: str = "jsonl",
        compression: str | None = None,
        destination_conn_id: str | None = None,
        staging_conn_id: str | None = None,
        include_raw: bool = False,
        partition_date: str | None = None,
        batch_size: int = 20_000,
        progress_seconds: float = 10.0,  # engine.progress.DEFAULT_INTERVAL (not imported by DAG files)
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and not _is_templated(destination):
            kwargs["outlets"] = [Asset(destination_uri(destination))]
        super().__init__(**kwargs)
        self.manifests = manifests
        self.destination = destination
        self.file_format = file_format
        self.compression = compression
        self.destination_conn_id = destination_conn_id
        self.staging_conn_id = staging_conn_id
        self.include_raw = include_raw
        self.partition_date = partition_date
        self.batch_size = batch_size
        self.progress_seconds = progress_seconds
        self._lineage: tuple[list[ObjectStoragePath], list[ObjectStoragePath]] = ([], [])

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_linkmsg.io.file_export import export_manifest
        from airflow_provider_linkmsg.io.files import check_format, check_partition_date
        from airflow_provider_linkmsg.io.staging import to_path
        from airflow_provider_linkmsg.operators.export_progress import check_progress_seconds, export_progress
        from airflow_provider_linkmsg.validation import check_export_arguments

        check_export_arguments(self, files=True)
        check_progress_seconds(self)
        codec = self.compression or ("snappy" if self.file_format == "parquet" else None)
        check_format(self.file_format, codec)
        check_partition_date(self.partition_date)
        manifests = resolve_manifests(self.manifests, self.staging_conn_id)
        if not manifests:
            raise AirflowSkipException("No staging manifests to export.")
        destination = to_path(self.destination, self.destination_conn_id)
        partition_date = self.partition_date or run_data_date(context)
        files: list[dict[str, Any]] = []
        dedup: Counter[str] = Counter()
        progress = export_progress(self, f"export to {destination}", manifests, unit="file(s) written")
        with progress:
            for manifest in manifests:
                done = export_manifest(
                    manifest,
                    destination,
                    file_format=self.file_format,
                    compression=codec,
                    include_raw=self.include_raw,
                    partition_date=partition_date,
                    batch_size=self.batch_size,
                    progress=progress,
                )
                self.log.info(
                    "Exported %s records of %s (%s) to %s file(s) under %s; one row per key: %s row(s) removed "
                    "from earlier files, %s older record(s) left out, %s file(s) deleted",
                    manifest.record_count,
                    manifest.path,
                    manifest.vendor,
                    len(done["files"]),
                    destination,
                    done["superseded"],
                    done["older"],
                    done["files_removed"],
                )
                files.extend(done["files"])
                dedup.update({k: done[k] for k in ("superseded", "older", "files_removed")})
        counts = _counts(manifests)
        self._lineage = ([m.directory for m in manifests], [destination])
        extra = {**counts, "files": len(files), "destination": str(destination), "format": self.file_format}
        _set_outlet_events(self, context, extra, destination_uri(destination))
        return {
            "destination": str(destination),
            "format": self.file_format,
            "compression": codec,
            **counts,
            "manifests": [str(m.path) for m in manifests],
            "files": files,
            "partition_date": partition_date,
            **{k: dedup[k] for k in ("superseded", "older", "files_removed")},
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """Inputs: the staging run directories; output: the destination."""
        from airflow.providers.openlineage.extractors import OperatorLineage

        inputs, outputs = self._lineage
        return OperatorLineage(
            inputs=[_ol_dataset(p) for p in inputs], outputs=[_ol_dataset(p) for p in outputs]
        )


class LinkMsgExportToSqlOperator(BaseOperator):
    """
    Upsert staged records into SQL tables through any common-sql connection (Postgres, SQLite, MySQL ...).

    Messages go to ``messages_table`` and Koneksi generated messages to ``generated_messages_table``, one
    row per record key (column ``record_key``), in batches of one transaction each: a re-run or a retry
    after a crash leaves exactly one row per message. Tables are created when missing.

    Each table has one asset, ``Asset("x-linkmsg-sql://{conn_id}/{table}")``
    (:func:`~airflow_provider_linkmsg.io.sql.sql_table_uri`). Without ``outlets``, the operator declares
    ``AssetAlias("linkmsg-sql:{conn_id}")`` and announces, through it, the asset of each table it wrote
    (and no other); the asset event's ``extra`` holds ``records``, ``manifests``, ``by_vendor``,
    ``by_record_type``, ``by_table`` and ``conn_id``.

    The arguments ``conn_id``, ``database``, ``hook_params`` and ``retry_on_failure`` and
    :meth:`get_db_hook` are those of common-sql's ``BaseSQLOperator``; the operator does not derive from it
    because importing common-sql would cost every DAG file that uses it more than its whole parse budget
    (common-sql is imported when the task runs).

    :param manifests: staging manifests: a path, a staging operator's XCom value, or a list (also nested).
    :param conn_id: an Airflow connection whose hook is a ``DbApiHook``.
    :param messages_table: table of :class:`~airflow_provider_linkmsg.records.Message` rows.
    :param generated_messages_table: table of :class:`~airflow_provider_linkmsg.records.GeneratedMessage`
        rows.
    :param batch_size: rows per transaction.
    :param create_table: create missing tables (``CREATE TABLE IF NOT EXISTS``).
    :param include_raw: store the vendor's raw JSON in the ``raw`` column (when it was staged).
    :param staging_conn_id: connection of the staging store, for manifest paths given without one.
    :param database: override the connection's database (schema).
    :param hook_params: extra arguments of the connection's hook.
    :param progress_seconds: seconds between progress lines while exporting (1 to 30, 10 by default):
        batches committed and left, rows written of the staged total.
    :return: ``{"conn_id", "tables", "records", "manifests", "by_vendor", "by_record_type", "by_table"}``.
    """

    conn_id_field = "conn_id"
    template_fields: Sequence[str] = (
        "conn_id",
        "database",
        "hook_params",
        "manifests",
        "messages_table",
        "generated_messages_table",
        "staging_conn_id",
    )

    def __init__(
        self,
        *,
        manifests: Any,
        conn_id: str,
        messages_table: str = DEFAULT_TABLES[Message.record_type],
        generated_messages_table: str = DEFAULT_TABLES[GeneratedMessage.record_type],
        batch_size: int = 1000,
        create_table: bool = True,
        include_raw: bool = False,
        staging_conn_id: str | None = None,
        database: str | None = None,
        hook_params: dict | None = None,
        retry_on_failure: bool = True,
        progress_seconds: float = 10.0,  # engine.progress.DEFAULT_INTERVAL (not imported by DAG files)
        **kwargs: Any,
    ) -> None:
        if "outlets" not in kwargs and not _is_templated(conn_id):
            kwargs["outlets"] = [AssetAlias(sql_asset_alias(conn_id))]
        super().__init__(**kwargs)
        self.conn_id = conn_id
        self.database = database
        self.hook_params = hook_params or {}
        self.retry_on_failure = retry_on_failure
        self.manifests = manifests
        self.messages_table = messages_table
        self.generated_messages_table = generated_messages_table
        self.batch_size = batch_size
        self.create_table = create_table
        self.include_raw = include_raw
        self.staging_conn_id = staging_conn_id
        self.progress_seconds = progress_seconds
        self._tables_written: list[str] = []
        self._staged_dirs: list[ObjectStoragePath] = []

    @property
    def tables(self) -> dict[str, str]:
        """Table per record type."""
        return {
            Message.record_type: check_table_name(self.messages_table, "messages_table"),
            GeneratedMessage.record_type: check_table_name(
                self.generated_messages_table, "generated_messages_table"
            ),
        }

    @cached_property
    def _hook(self) -> DbApiHook:
        """The connection's hook, found as common-sql's ``BaseSQLOperator`` finds it."""
        from airflow.providers.common.compat.sdk import BaseHook
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        connection = BaseHook.get_connection(self.conn_id)
        hook = connection.get_hook(hook_params={**connection.extra_dejson, **self.hook_params})
        if not isinstance(hook, DbApiHook):
            raise AirflowException(f"its hook, {type(hook).__name__}, is not a common-sql DbApiHook")
        if self.database:
            if hook.conn_type == "postgres":
                hook.database = self.database
            else:
                hook.schema = self.database
        return hook

    def get_db_hook(self) -> DbApiHook:
        """The connection's ``DbApiHook`` (``hook_params`` and ``database`` applied), as in common-sql."""
        return self._hook

    def _db_hook(self) -> DbApiHook:
        """The connection's ``DbApiHook``, or an error naming the connection when it is not a database."""
        from airflow.providers.common.sql.hooks.sql import DbApiHook

        check_sql_connection(self.conn_id)
        try:
            hook = self.get_db_hook()
        except AirflowNotFoundException:
            raise
        except (TypeError, AirflowException) as exc:
            hook, reason = None, f" ({exc})"
        else:
            reason = ""
        if not isinstance(hook, DbApiHook):
            raise LinkMsgValidationError(
                f"connection {self.conn_id!r} is not a SQL database connection{reason}: give a connection "
                "whose hook is a common-sql DbApiHook (postgres, sqlite, mysql ...)",
                field="conn_id",
            )
        return hook

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_linkmsg.io.sql import SqlUpserter
        from airflow_provider_linkmsg.io.staging import iter_records
        from airflow_provider_linkmsg.operators.export_progress import check_progress_seconds, export_progress
        from airflow_provider_linkmsg.validation import check_export_arguments

        check_export_arguments(self, files=False)
        check_progress_seconds(self)
        tables = self.tables
        manifests = resolve_manifests(self.manifests, self.staging_conn_id)
        if not manifests:
            raise AirflowSkipException("No staging manifests to export.")
        by_table: Counter[str] = Counter()
        upserter = SqlUpserter(
            self._db_hook(),
            tables=tables,
            batch_size=self.batch_size,
            create_table=self.create_table,
            include_raw=self.include_raw,
        )
        progress = export_progress(
            self, f"export to {self.conn_id}", manifests, unit="batch(es) committed", batch=self.batch_size
        )
        with upserter, progress:
            for manifest in manifests:
                written = upserter.upsert(
                    iter_records(manifest), record_type=manifest.record_type, progress=progress
                )
                table = tables[manifest.record_type]
                by_table[table] += written
                self.log.info("Upserted %s records of %s into %s", written, manifest.path, table)
        self._tables_written = list(by_table)
        self._staged_dirs = [m.directory for m in manifests]
        extra = {**_counts(manifests), "by_table": dict(by_table), "conn_id": self.conn_id}
        _set_outlet_events(self, context, extra, *(sql_table_uri(self.conn_id, t) for t in by_table))
        return {**extra, "tables": tables, "manifests": [str(m.path) for m in manifests]}

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> OperatorLineage:
        """Inputs: the staging run directories; outputs: the tables written (named as in OpenLineage SQL)."""
        from airflow.providers.common.compat.openlineage.facet import Dataset
        from airflow.providers.openlineage.extractors import OperatorLineage
        from airflow.providers.openlineage.sqlparser import SQLParser

        hook = self._db_hook()
        connection = hook.get_connection(self.conn_id)
        info = hook.get_openlineage_database_info(connection)
        if info is None:
            namespace, prefix = f"{hook.dialect_name}://{connection.host or ''}", []
        else:
            namespace, prefix = SQLParser.create_namespace(info), [info.database]
        schema = hook.get_openlineage_default_schema() if info is not None else None
        outputs = []
        for table in self._tables_written:
            parts = [*prefix, table] if "." in table else [*prefix, schema, table]
            outputs.append(Dataset(namespace=namespace, name=".".join(p for p in parts if p)))
        return OperatorLineage(inputs=[_ol_dataset(p) for p in self._staged_dirs], outputs=outputs)
