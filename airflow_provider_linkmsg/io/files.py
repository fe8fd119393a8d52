"""
Records into files on any :class:`ObjectStoragePath`: JSON Lines (optionally gzip), CSV (optionally gzip)
and Parquet (the ``parquet`` extra, pyarrow).

Files are streamed (Parquet in row groups of ``batch_size`` records) and written through
:func:`~airflow_provider_linkmsg.io.atomic.atomic_write`, so a reader never sees half a file.
The layout partitions by vendor and the run's data date, and names derive from the staging run, so
exporting the same manifest again overwrites its files instead of adding copies::

    {destination}/vendor={vendor}/date={YYYY-MM-DD}/{run}-part-00000.jsonl.gz

Exporting a staged run into a destination, one row per key: :mod:`~airflow_provider_linkmsg.io.file_export`.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import json
from collections.abc import Iterable, Iterator
from datetime import date
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.io.atomic import atomic_write
from airflow_provider_linkmsg.io.extras import require_parquet
from airflow_provider_linkmsg.io.paths import safe_name
from airflow_provider_linkmsg.io.sql import Column, columns

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_linkmsg.io.manifest import Manifest
    from airflow_provider_linkmsg.records import GeneratedMessage, Message

FORMATS = ("jsonl", "csv", "parquet")
TEXT_COMPRESSIONS = (None, "gzip")


def check_format(file_format: str, compression: str | None) -> None:
    """
    Refuse unknown formats and compressions.

    :param file_format: ``jsonl``, ``csv`` or ``parquet``.
    :param compression: ``None`` or ``gzip`` for text formats; a Parquet codec (``snappy``, ``zstd``,
        ``gzip`` ...) or ``None`` for Parquet.
    """
    if file_format not in FORMATS:
        raise LinkMsgValidationError(
            f"file_format must be one of {FORMATS}, not {file_format!r}", field="file_format"
        )
    if file_format == "parquet":
        require_parquet()
    if file_format != "parquet" and compression not in TEXT_COMPRESSIONS:
        raise LinkMsgValidationError(
            f"{file_format} files support compression None or 'gzip', not {compression!r}",
            field="compression",
        )


def check_partition_date(value: str | None) -> None:
    """Refuse a ``partition_date`` that is not ``YYYY-MM-DD`` (``None`` means the staging day)."""
    if value is None:
        return
    try:
        date.fromisoformat(str(value))
    except ValueError:
        raise LinkMsgValidationError(
            f"partition_date {value!r} is not a date: give YYYY-MM-DD, e.g. '{{{{ ds }}}}'",
            field="partition_date",
        ) from None


def file_columns(record_type: str, include_raw: bool) -> tuple[Column, ...]:
    """
    The columns of CSV and Parquet files: ``key`` then the record's fields (``raw`` only when included).

    :param record_type: ``message`` or ``generated_message``.
    :param include_raw: add the ``raw`` column (JSON text).
    """
    return tuple(c for c in columns(record_type) if include_raw or c.kind != "json")


def output_path(
    destination: ObjectStoragePath,
    manifest: Manifest,
    part: int,
    *,
    file_format: str,
    compression: str | None = None,
    partition_date: str | None = None,
) -> ObjectStoragePath:
    """
    Where part ``part`` of a staged run goes; the same inputs always give the same path.

    :param destination: the export's root.
    :param manifest: the staged run.
    :param part: index of the staged part file.
    :param file_format: ``jsonl``, ``csv`` or ``parquet``.
    :param compression: ``gzip`` adds ``.gz`` to text formats.
    :param partition_date: ``YYYY-MM-DD``, the run's data date; defaults to the day the run was staged (UTC).
    """
    date = (partition_date or manifest.created_at)[:10]
    suffix = ".gz" if compression == "gzip" and file_format != "parquet" else ""
    name = f"{safe_name(manifest.run_id)}-part-{part:05d}.{file_format}{suffix}"
    return destination / f"vendor={safe_name(manifest.vendor)}" / f"date={date}" / name


@contextlib.contextmanager
def binary_output(path: ObjectStoragePath, compression: str | None) -> Iterator[IO[bytes]]:
    """Write a binary file atomically, gzip-compressed (reproducibly) when ``compression`` is ``gzip``."""
    with atomic_write(path, "wb") as raw:
        if compression == "gzip":
            # mtime=0 and no file name: the same records always give the same bytes.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as stream:
                yield stream
        else:
            yield raw


def _csv_value(value: Any, col: Column) -> Any:
    if value is None:
        return ""
    if col.kind == "bool":
        return "true" if value else "false"
    if col.kind == "json":
        return json.dumps(value, ensure_ascii=False)
    return value


def _write_jsonl(stream: IO[bytes], records: Iterable[Message | GeneratedMessage], include_raw: bool) -> int:
    count = 0
    for record in records:
        stream.write(record.to_json(include_raw=include_raw).encode())
        stream.write(b"\n")
        count += 1
    return count


def copy_lines(stream: IO[bytes], lines: Iterable[bytes]) -> int:
    """Write ``lines`` as they are; returns how many."""
    count = 0
    for line in lines:
        stream.write(line)
        count += 1
    return count


def _write_csv(
    stream: IO[bytes], records: Iterable[Message | GeneratedMessage], cols: tuple[Column, ...]
) -> int:
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([c.name for c in cols])
    count = 0
    for record in records:
        data = record.to_dict(include_raw=True)
        writer.writerow([_csv_value(data.get(c.name), c) for c in cols])
        count += 1
    text.flush()
    text.detach()  # leave the underlying file open: atomic_write fsyncs and renames it
    return count


def parquet_schema(cols: tuple[Column, ...]):
    """
    The Arrow schema of a Parquet export (timestamps as ``timestamp[us, UTC]``, ``raw`` as JSON text).

    :param cols: from :func:`file_columns`.
    """
    import pyarrow as pa

    types = {
        "key": pa.string(),
        "text": pa.string(),
        "json": pa.string(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "bool": pa.bool_(),
        "int": pa.int64(),
    }
    return pa.schema([pa.field(c.name, types[c.kind], nullable=c.nullable) for c in cols])


def _write_parquet(
    stream: IO[bytes],
    records: Iterable[Message | GeneratedMessage],
    cols: tuple[Column, ...],
    compression: str | None,
    batch_size: int,
) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            "Parquet export needs pyarrow: pip install 'airflow-provider-linkmsg[parquet]'"
        ) from err

    schema = parquet_schema(cols)
    count = 0
    with pq.ParquetWriter(stream, schema, compression=compression or "none") as writer:
        batch: dict[str, list[Any]] = {c.name: [] for c in cols}
        for record in records:
            data = record.to_dict(include_raw=True)
            for c in cols:
                value = data.get(c.name)
                if c.kind == "json" and value is not None:
                    value = json.dumps(value, ensure_ascii=False)
                batch[c.name].append(value)
            count += 1
            if len(batch["key"]) >= batch_size:
                writer.write_batch(_arrow_batch(pa, batch, cols, schema))
                batch = {c.name: [] for c in cols}
        if batch["key"]:
            writer.write_batch(_arrow_batch(pa, batch, cols, schema))
    return count


def _arrow_batch(pa, batch: dict[str, list[Any]], cols: tuple[Column, ...], schema):
    arrays = []
    for c in cols:
        field = schema.field(c.name)
        if c.kind == "timestamp":
            arrays.append(pa.array(batch[c.name], pa.string()).cast(field.type))
        else:
            arrays.append(pa.array(batch[c.name], field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def write_records(
    records: Iterable[Message | GeneratedMessage],
    path: ObjectStoragePath,
    *,
    record_type: str,
    file_format: str = "jsonl",
    compression: str | None = None,
    include_raw: bool = False,
    batch_size: int = 20_000,
) -> int:
    """
    Stream records into one file, atomically; returns how many were written.

    :param records: records of ``record_type``.
    :param path: the file to write.
    :param record_type: ``message`` or ``generated_message`` (fixes the CSV/Parquet columns).
    :param file_format: ``jsonl``, ``csv`` or ``parquet``.
    :param compression: ``gzip`` or ``None`` for text formats; a Parquet codec for Parquet.
    :param include_raw: keep the vendor's raw JSON (a ``raw`` column in CSV and Parquet).
    :param batch_size: records per Parquet row group.
    """
    check_format(file_format, compression)
    cols = file_columns(record_type, include_raw)
    if file_format == "parquet":
        with atomic_write(path, "wb") as stream:
            return _write_parquet(stream, records, cols, compression, batch_size)
    with binary_output(path, compression) as stream:
        if file_format == "csv":
            return _write_csv(stream, records, cols)
        return _write_jsonl(stream, records, include_raw)
