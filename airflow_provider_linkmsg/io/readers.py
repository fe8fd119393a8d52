"""Readers of staged runs: records or raw JSON lines streamed one at a time, checked against the manifest."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from airflow_provider_linkmsg.exceptions import LinkMsgError
from airflow_provider_linkmsg.io.manifest import Manifest
from airflow_provider_linkmsg.io.paths import open_for_read
from airflow_provider_linkmsg.records import RECORD_TYPES

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_linkmsg.records import GeneratedMessage, Message


def iter_records(
    manifest: Manifest | str | ObjectStoragePath, conn_id: str | None = None
) -> Iterator[Message | GeneratedMessage]:
    """
    Stream the records of a staged run, one line at a time (memory stays flat whatever the size).

    :param manifest: a :class:`Manifest`, or the path of ``manifest.json`` or of its run directory.
    :param conn_id: connection of the store when ``manifest`` is a string.
    :raises LinkMsgError: when a part file holds fewer or more records than the manifest says.
    """
    if not isinstance(manifest, Manifest):
        manifest = Manifest.load(manifest, conn_id)
    for index in range(len(manifest.files)):
        yield from iter_part(manifest, index)


def iter_part(manifest: Manifest, index: int) -> Iterator[Message | GeneratedMessage]:
    """
    Stream the records of one part file of a staged run.

    :param manifest: the staged run.
    :param index: position of the part in ``manifest.files``.
    :raises LinkMsgError: when the part holds fewer or more records than the manifest says.
    """
    record_cls = RECORD_TYPES[manifest.record_type]
    for line in iter_part_lines(manifest, index):
        yield record_cls.from_json(line)


def iter_part_lines(manifest: Manifest, index: int) -> Iterator[bytes]:
    """
    Stream the JSON lines (with their ``\\n``) of one part file of a staged run, unparsed.

    :param manifest: the staged run.
    :param index: position of the part in ``manifest.files``.
    :raises LinkMsgError: when the part holds fewer or more records than the manifest says.
    """
    info = manifest.files[index]
    path = manifest.directory / info["name"]
    count = 0
    with open_for_read(path) as f:
        for line in f:
            if line.strip():
                count += 1
                yield line if line.endswith(b"\n") else line + b"\n"
    if count != info["records"]:
        raise LinkMsgError(
            f"Staged file {path} holds {count} records but its manifest says {info['records']}: "
            "the staging data was changed after the run; stage the run again."
        )
