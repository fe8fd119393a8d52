"""
Export a staged run into a file destination that holds one row per record key.

A record's version is the time its staging run closed (``Manifest.created_at``): the latest wins. The
keys of every exported file are kept beside the data (:mod:`~airflow_provider_linkmsg.io.keyindex`), so an
export removes the keys it brings from the files that held them before, and leaves out those the
destination already holds in a newer version, with memory bounded whatever the destination holds.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_linkmsg.io.atomic import atomic_write
from airflow_provider_linkmsg.io.files import (
    binary_output,
    check_format,
    copy_lines,
    output_path,
    write_records,
)
from airflow_provider_linkmsg.io.keyindex import (
    KEYS_DIR,
    RunKeys,
    key_files,
    key_of,
    load_key_file,
    remove_keys_file,
    write_keys,
)
from airflow_provider_linkmsg.io.lease import Lease
from airflow_provider_linkmsg.io.paths import exists, open_for_read, remove, safe_name
from airflow_provider_linkmsg.io.readers import iter_part, iter_part_lines

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_linkmsg.engine.progress import Progress
    from airflow_provider_linkmsg.io.manifest import Manifest


def export_manifest(
    manifest: Manifest,
    destination: ObjectStoragePath,
    *,
    file_format: str = "jsonl",
    compression: str | None = None,
    include_raw: bool = False,
    partition_date: str | None = None,
    batch_size: int = 20_000,
    lease_wait_seconds: float = 300,
    lease_expiry_seconds: float = 1800,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """
    Export every part of a staged run to its own file, keeping one row per key in ``destination``.

    Two exports of one vendor into one destination take turns: each holds the destination's export
    lease (``{destination}/_linkmsg_keys/vendor={vendor}.lease``, see
    :class:`~airflow_provider_linkmsg.io.lease.Lease`) from reading the key files to removing the
    superseded keys, so neither misses the keys the other writes.

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
    :param lease_wait_seconds: how long to wait for another export into the same destination and vendor
        before failing with an error that names it.
    :param lease_expiry_seconds: after how long without renewal an export that died has let go.
    :param progress: told of each part file written and of the rows as they are written.
    """
    check_format(file_format, compression)
    lease = Lease(
        export_lease_path(destination, manifest.vendor),
        {
            "dag_id": None,
            "run_id": manifest.run_id,
            "task_id": "export",
            "map_index": None,
            "try_number": None,
        },
        wait_seconds=lease_wait_seconds,
        expiry_seconds=lease_expiry_seconds,
        vendor=manifest.vendor,
    )
    with lease:
        return _export_held(
            manifest,
            destination,
            lease,
            file_format=file_format,
            compression=compression,
            include_raw=include_raw,
            partition_date=partition_date,
            batch_size=batch_size,
            progress=progress,
        )


def export_lease_path(destination: ObjectStoragePath, vendor: str) -> ObjectStoragePath:
    """The lease that one export at a time holds on ``vendor``'s files in ``destination``."""
    return destination / KEYS_DIR / f"vendor={safe_name(vendor)}.lease"


def _export_held(
    manifest: Manifest,
    destination: ObjectStoragePath,
    lease: Lease,
    *,
    file_format: str,
    compression: str | None,
    include_raw: bool,
    partition_date: str | None,
    batch_size: int,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """:func:`export_manifest`'s work, under the destination's lease."""
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
            lease.renew()
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
                progress=progress,
            )
            if progress is not None:
                progress.advance()
            if count:
                written.append({"path": str(path), "records": count})
            else:  # every record is held in a newer version elsewhere
                remove(path)
                remove_keys_file(destination, relative[index])
        for file in keys.superseded_files():
            lease.renew()
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


def _counted(items: Iterable[Any], progress: Progress | None, every: int = 1000) -> Iterator[Any]:
    """``items`` as they are, telling ``progress`` of them every ``every`` items and at the end."""
    if progress is None:
        yield from items
        return
    count = 0
    for item in items:
        yield item
        count += 1
        if count == every:
            progress.advance(0, records=count)
            count = 0
    if count:
        progress.advance(0, records=count)


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
    progress: Progress | None = None,
) -> int:
    first = next(kept, None)
    if first is None:
        return 0
    kept = itertools.chain([first], kept)
    if file_format == "jsonl" and (include_raw or not manifest.include_raw):
        # The staged lines already are the records' JSON Lines form: copy them as they are.
        with binary_output(path, compression) as stream:
            return copy_lines(stream, _counted(_select(iter_part_lines(manifest, index), kept), progress))
    return write_records(
        _counted(_select(iter_part(manifest, index), kept), progress),
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
        with binary_output(path, compression) as stream:
            if ".csv" in name:
                return _filter_csv(source, stream, drop)
            return copy_lines(stream, (line for line in source if line.strip() and key_of(line) not in drop))


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
