"""The staging writer: records of one run streamed into JSON Lines part files, closed by a manifest."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.io.atomic import _TempFile, atomic_write
from airflow_provider_linkmsg.io.manifest import MANIFEST_NAME, Manifest
from airflow_provider_linkmsg.io.paths import filesystem, remove, safe_name, to_path
from airflow_provider_linkmsg.records import RECORD_TYPES

if TYPE_CHECKING:
    from types import TracebackType

    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_linkmsg.records import GeneratedMessage, Message

_RUN_FILE = re.compile(r"^(part-\d+\.jsonl|\.part-\d+\.jsonl\.tmp-\w+|\.manifest\.json\.tmp-\w+)$")


class StagingWriter:
    """
    Stream records of one run into JSON Lines part files and close the run with a manifest.

    Use it as a context manager: a clean exit writes the manifest, an exception leaves no manifest and
    no visible part file of this run. ``close()`` returns the :class:`Manifest`.

    :param root: staging root (any fsspec scheme).
    :param vendor: vendor of the records (a path segment).
    :param record_type: ``message`` or ``generated_message``; other records are refused.
    :param run_id: identifies the run; a run with the same id replaces an earlier one.
    :param conn_id: connection of the store when ``root`` is a string.
    :param include_raw: keep the records' ``raw`` vendor JSON.
    :param max_records_per_file: records per part file.
    """

    def __init__(
        self,
        root: str | ObjectStoragePath,
        *,
        vendor: str,
        record_type: str,
        run_id: str,
        conn_id: str | None = None,
        include_raw: bool = False,
        max_records_per_file: int = 100_000,
    ) -> None:
        if record_type not in RECORD_TYPES:
            raise ValueError(f"record_type must be one of {sorted(RECORD_TYPES)}, not {record_type!r}")
        if max_records_per_file < 1:
            raise ValueError("max_records_per_file must be at least 1")
        self.vendor = vendor
        self.record_type = record_type
        self.run_id = run_id
        self.include_raw = include_raw
        self.max_records_per_file = max_records_per_file
        self.directory = to_path(root, conn_id) / safe_name(vendor) / safe_name(run_id)
        self._parts: list[tuple[_TempFile, dict[str, Any]]] = []
        self._current: _TempFile | None = None
        self._info: dict[str, Any] = {}
        self._stats: dict[str, Any] = {"api_calls": 0, "credits": 0}
        self._extra: dict[str, Any] = {}
        self._watermarks: dict[str, Any] = {}
        self._manifest: Manifest | None = None
        self._aborted = False

    @property
    def manifest_path(self) -> ObjectStoragePath:
        """Where the manifest is written on close."""
        return self.directory / MANIFEST_NAME

    @property
    def record_count(self) -> int:
        """Records written so far."""
        return sum(info["records"] for _, info in self._parts)

    def write(self, record: Message | GeneratedMessage) -> None:
        """
        Append one record as a JSON line to the current part file.

        :param record: a record of this writer's ``record_type``.
        """
        if self._manifest is not None or self._aborted:
            raise RuntimeError(f"staging run {self.run_id!r} is already closed")
        if record.record_type != self.record_type:
            raise TypeError(f"this writer stages {self.record_type!r} records, not {record.record_type!r}")
        if self._current is None or self._info["records"] >= self.max_records_per_file:
            self._start_part()
        line = record.to_json(include_raw=self.include_raw).encode() + b"\n"
        self._current.file.write(line)
        self._info["records"] += 1
        self._info["bytes"] += len(line)

    def add_stats(self, api_calls: int = 0, credits: int | float = 0, **extra: Any) -> None:
        """
        Add to the run's counters; numbers in ``extra`` are summed, other values replaced.

        :param api_calls: vendor calls made.
        :param credits: vendor credits spent.
        """
        self._stats["api_calls"] += api_calls
        self._stats["credits"] += credits
        for name, value in extra.items():
            old = self._extra.get(name)
            summable = isinstance(value, int | float) and not isinstance(value, bool)
            if summable and isinstance(old, int | float) and not isinstance(old, bool):
                self._extra[name] = old + value
            else:
                self._extra[name] = value

    def set_watermarks(self, watermarks: Mapping[str, Any]) -> None:
        """
        Record (merge) the watermarks that the staged data covers; they go into the manifest.

        :param watermarks: e.g. ``{conversation_id: {"sent_at": ...}}``.
        """
        self._watermarks.update(watermarks)

    def _start_part(self) -> None:
        if self._current is not None:
            self._current.finish()
        name = f"part-{len(self._parts):05d}.jsonl"
        self._current = _TempFile(self.directory / name)
        self._info = {"name": name, "records": 0, "bytes": 0}
        self._parts.append((self._current, self._info))

    def close(self) -> Manifest:
        """
        Finish the run: make the part files visible, then write the manifest. Returns the manifest.

        Calling it again returns the same manifest.
        """
        if self._manifest is not None:
            return self._manifest
        if self._aborted:
            raise RuntimeError(f"staging run {self.run_id!r} was aborted")
        committed: list[_TempFile] = []
        try:
            for part, _ in self._parts:
                part.finish()
            # The manifest is the commit marker: take the previous one of this run id away first, so no
            # manifest ever lists parts that are being replaced.
            remove(self.manifest_path)
            for part, _ in self._parts:
                part.commit()
                committed.append(part)
            manifest = Manifest(
                vendor=self.vendor,
                record_type=self.record_type,
                run_id=self.run_id,
                files=[dict(info) for _, info in self._parts],
                record_count=self.record_count,
                watermarks=dict(self._watermarks),
                api_calls=self._stats["api_calls"],
                credits=self._stats["credits"],
                extra=dict(self._extra),
                include_raw=self.include_raw,
                path=self.manifest_path,
            )
            with atomic_write(self.manifest_path, "w") as f:
                json.dump(manifest.to_dict(), f, ensure_ascii=False, indent=1)
        except BaseException:
            for part in committed:
                remove(part.path)
            self.abort()
            raise
        self._manifest = manifest
        self._sweep()
        return manifest

    def _sweep(self) -> None:
        """Best effort: delete what killed or larger earlier attempts of this run id left behind."""
        keep = {info["name"] for _, info in self._parts}
        with contextlib.suppress(Exception):
            fs = filesystem(self.directory)
            for entry in fs.ls(self.directory.path, detail=False):
                name = entry.rstrip("/").rsplit("/", 1)[-1]
                if name not in keep and _RUN_FILE.match(name):
                    fs.rm_file(entry)

    def abort(self) -> None:
        """Give the run up: delete its temporary part files. No manifest is written."""
        self._aborted = True
        for part, _ in self._parts:
            part.discard()

    def __enter__(self) -> StagingWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close()
        elif self._manifest is None:
            self.abort()
