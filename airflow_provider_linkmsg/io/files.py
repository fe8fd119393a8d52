"""
Records into files on any :class:`ObjectStoragePath`: JSON Lines (optionally gzip), CSV (optionally gzip)
and Parquet (the ``parquet`` extra, pyarrow).

Files are streamed (Parquet in row groups of ``batch_size`` records) and written through
:func:`~airflow_provider_linkmsg.io.atomic.atomic_write`, so a reader never sees half a file.
The layout partitions by vendor and the run's data date, and names derive from the staging run, so
exporting the same manifest again overwrites its files instead of adding copies::

    {destination}/vendor={vendor}/date={YYYY-MM-DD}/{run}-part-00000.jsonl.gz

A destination holds one row per record key: an export removes the keys it brings from the files that
held them before, and leaves out those the destination already holds in a newer version
(:mod:`~airflow_provider_linkmsg.io.keyindex`).
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import itertools
import json
from collections.abc import Iterable, Iterator
from datetime import date
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.io.atomic import atomic_write
from airflow_provider_linkmsg.io.keyindex import (
    RunKeys,
    key_files,
    key_of,
    load_key_file,
    remove_keys_file,
    write_keys,
)
from airflow_provider_linkmsg.io.paths import exists, open_for_read, remove, safe_name
from airflow_provider_linkmsg.io.readers import iter_part, iter_part_lines
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
def _binary_output(path: ObjectStoragePath, compression: str | None) -> Iterator[IO[bytes]]:
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


def _copy_lines(stream: IO[bytes], lines: Iterable[bytes]) -> int:
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
    with _binary_output(path, compression) as stream:
        if file_format == "csv":
            return _write_csv(stream, records, cols)
        return _write_jsonl(stream, records, include_raw)


def export_manifest(
    manifest: Manifest,
    destination: ObjectStoragePath,
    *,
    file_format: str = "jsonl",
    compression: str | None = None,
    include_raw: bool = False,
    partition_date: str | None = None,
    batch_size: int = 20_000,
) -> dict[str, Any]:
    """
    Export every part of a staged run to its own file, keeping one row per key in ``destination``.

    In order, each step safe to die in (the export's retry repairs what a crash leaves):

    1. the run's keys go to a temporary SQLite file (the last occurrence in the run wins);
    2. the destination's key files of the vendor are streamed through it: a key held by an earlier
       version elsewhere is marked for removal there, one held by a newer version is left out here;
    3. each part is written (key file first, then the data file), without the keys left out;
    4. the keys marked in step 2 are removed from the files that held them (a file left empty is
       deleted), and files of this run that this export did not write (another date partition, a part
       the run no longer has) are deleted.

    Returns ``{"files": [{"path", "records"}], "superseded", "older", "files_removed"}``: the rows
    removed from earlier files, the run's records left out as older, the files deleted. A run without
    records (or whose every record is older) exports no file.

    :param manifest: the staged run.
    :param destination: the export's root.
    :param file_format: ``jsonl``, ``csv`` or ``parquet``.
    :param compression: see :func:`write_records`.
    :param include_raw: keep the vendor's raw JSON (only if it was staged).
    :param partition_date: ``YYYY-MM-DD`` of the ``date=`` partition (the run's data date); defaults to
        the staging day.
    :param batch_size: records per Parquet row group.
    """
    check_format(file_format, compression)
    paths = [
        output_path(
            destination,
            manifest,
            index,
            file_format=file_format,
            compression=compression,
            partition_date=partition_date,
        )
        for index in range(len(manifest.files))
    ]
    relative = [_relative(destination, path) for path in paths]
    written, removed, superseded = [], 0, 0
    with RunKeys(manifest) as keys:
        keys.load()
        own_stale = []
        for key_file in key_files(destination, manifest.vendor):
            if key_file.file in relative:
                continue  # overwritten below
            if key_file.run == keys.run:
                own_stale.append(key_file.file)
            else:
                keys.compare(key_file)
        older = keys.older_count()
        for index, path in enumerate(paths):
            kept = keys.kept_lines(index)
            write_keys(
                destination, relative[index], keys.kept_keys(index), version=keys.version, run=keys.run
            )
            count = _export_part(
                manifest,
                index,
                path,
                kept,
                file_format=file_format,
                compression=compression,
                include_raw=include_raw,
                batch_size=batch_size,
            )
            if count:
                written.append({"path": str(path), "records": count})
            else:  # every record is held in a newer version elsewhere
                remove(path)
                remove_keys_file(destination, relative[index])
        for file in keys.superseded_files():
            drop = keys.superseded_keys(file)
            left = filter_file(destination / file, drop, batch_size=batch_size)
            superseded += len(drop)
            if left:
                old = load_key_file(destination, file)
                kept_keys = (k for k in old.iter_keys() if k not in drop)
                write_keys(destination, file, kept_keys, version=old.version, run=old.run)
            else:
                remove(destination / file)
                remove_keys_file(destination, file)
                removed += 1
        for file in own_stale:
            remove(destination / file)
            remove_keys_file(destination, file)
            removed += 1
    return {"files": written, "superseded": superseded, "older": older, "files_removed": removed}


def _relative(destination: ObjectStoragePath, path: ObjectStoragePath) -> str:
    return str(path)[len(str(destination)) :].lstrip("/")


def _select(lines: Iterable[Any], kept: Iterator[int]) -> Iterator[Any]:
    """The items of ``lines`` whose position is in ``kept`` (ascending), streamed."""
    wanted = next(kept, None)
    for n, line in enumerate(lines):
        if wanted is None:
            return
        if n == wanted:
            yield line
            wanted = next(kept, None)


def _export_part(
    manifest: Manifest,
    index: int,
    path: ObjectStoragePath,
    kept: Iterator[int],
    *,
    file_format: str,
    compression: str | None,
    include_raw: bool,
    batch_size: int,
) -> int:
    first = next(kept, None)
    if first is None:
        return 0
    kept = itertools.chain([first], kept)
    if file_format == "jsonl" and (include_raw or not manifest.include_raw):
        # The staged lines already are the records' JSON Lines form: copy them as they are.
        with _binary_output(path, compression) as stream:
            return _copy_lines(stream, _select(iter_part_lines(manifest, index), kept))
    return write_records(
        _select(iter_part(manifest, index), kept),
        path,
        record_type=manifest.record_type,
        file_format=file_format,
        compression=compression,
        include_raw=include_raw,
        batch_size=batch_size,
    )


def filter_file(path: ObjectStoragePath, drop: set[str], *, batch_size: int = 20_000) -> int:
    """
    Rewrite an exported file without the records whose key is in ``drop``, atomically, in its own format
    (from its name: ``.jsonl[.gz]``, ``.csv[.gz]``, ``.parquet``); returns the records left.

    :param path: the data file.
    :param drop: keys to remove (at most this file's keys).
    :param batch_size: rows per Parquet batch.
    """
    if not exists(path):
        return 0
    name = path.name
    compression = "gzip" if name.endswith(".gz") else None
    if name.endswith(".parquet"):
        return _filter_parquet(path, drop, batch_size)
    with open_for_read(path, "rb") as raw:
        source = gzip.GzipFile(fileobj=raw, mode="rb") if compression else raw
        with _binary_output(path, compression) as stream:
            if ".csv" in name:
                return _filter_csv(source, stream, drop)
            return _copy_lines(stream, (line for line in source if line.strip() and key_of(line) not in drop))


def _filter_csv(source: IO[bytes], stream: IO[bytes], drop: set[str]) -> int:
    reader = csv.reader(io.TextIOWrapper(source, encoding="utf-8", newline=""))
    text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
    writer = csv.writer(text, lineterminator="\n")
    header = next(reader)
    writer.writerow(header)
    column, count = header.index("key"), 0
    for row in reader:
        if row[column] not in drop:
            writer.writerow(row)
            count += 1
    text.flush()
    text.detach()
    return count


def _filter_parquet(path: ObjectStoragePath, drop: set[str], batch_size: int) -> int:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    count, removed = 0, pa.array(sorted(drop), pa.string())
    with open_for_read(path, "rb") as source:
        parquet = pq.ParquetFile(source)
        meta = parquet.metadata
        codec = meta.row_group(0).column(0).compression.lower() if meta.num_row_groups else "none"
        codec = "none" if codec == "uncompressed" else codec
        with (
            atomic_write(path, "wb") as stream,
            pq.ParquetWriter(stream, parquet.schema_arrow, compression=codec) as writer,
        ):
            for batch in parquet.iter_batches(batch_size=batch_size):
                kept = batch.filter(pc.invert(pc.is_in(batch.column("key"), value_set=removed)))
                if kept.num_rows:
                    writer.write_batch(kept)
                    count += kept.num_rows
    return count
