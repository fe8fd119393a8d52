"""Export staged records to any SQL database through a common-sql connection: an upsert per key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowNotFoundException,
    AirflowSkipException,
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
from airflow_provider_linkmsg.operators.export_common import (
    is_templated,
    manifest_counts,
    ol_dataset,
    resolve_manifests,
    set_outlet_events,
)
from airflow_provider_linkmsg.records import GeneratedMessage, Message

# common.sql, the file writers (pyarrow for Parquet), staging and the checks are imported where they are
# used: DAG files import this module, and common.sql alone costs more than a DAG file may.
if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.providers.common.sql.hooks.sql import DbApiHook
    from airflow.providers.openlineage.extractors import OperatorLineage


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
        if "outlets" not in kwargs and not is_templated(conn_id):
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
        extra = {**manifest_counts(manifests), "by_table": dict(by_table), "conn_id": self.conn_id}
        set_outlet_events(self, context, extra, *(sql_table_uri(self.conn_id, t) for t in by_table))
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
        return OperatorLineage(inputs=[ol_dataset(p) for p in self._staged_dirs], outputs=outputs)
