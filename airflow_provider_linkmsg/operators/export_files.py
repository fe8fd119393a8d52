"""Export staged records to files (JSON Lines, CSV, Parquet) on any object store, one row per key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowSkipException,
    Asset,
    BaseOperator,
    ObjectStoragePath,
)

from airflow_provider_linkmsg.operators.export_common import (
    destination_uri,
    is_templated,
    manifest_counts,
    ol_dataset,
    resolve_manifests,
    run_data_date,
    set_outlet_events,
)

# common.sql, the file writers (pyarrow for Parquet), staging and the checks are imported where they are
# used: DAG files import this module, and common.sql alone costs more than a DAG file may.
if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.providers.openlineage.extractors import OperatorLineage


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
        if "outlets" not in kwargs and not is_templated(destination):
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
        counts = manifest_counts(manifests)
        self._lineage = ([m.directory for m in manifests], [destination])
        extra = {**counts, "files": len(files), "destination": str(destination), "format": self.file_format}
        set_outlet_events(self, context, extra, destination_uri(destination))
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
            inputs=[ol_dataset(p) for p in inputs], outputs=[ol_dataset(p) for p in outputs]
        )
