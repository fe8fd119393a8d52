"""The staging writer: records of one run streamed into JSON Lines part files, closed by a manifest."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_linkmsg.io.atomic import _TempFile, atomic_write
from airflow_provider_linkmsg.io.manifest import MANIFEST_NAME, Manifest
from airflow_provider_linkmsg.io.paths import filesystem, remove, safe_name, to_path
from airflow_provider_linkmsg.records import RECORD_TYPES

if TYPE_CHECKING:
    from types import TracebackType

    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_linkmsg.records import GeneratedMessage, Message

#: a part file of any generation (``part-00000.jsonl`` is generation 1, ``part-00000.g2.jsonl`` the next)
_PART = re.compile(r"^part-\d+(?:\.g(?P<generation>\d+))?\.jsonl$")
_RUN_FILE = re.compile(
    r"^(part-\d+(\.g\d+)?\.jsonl|\.part-\d+(\.g\d+)?\.jsonl\.tmp-\w+|\.manifest\.json\.tmp-\w+)$"
)


def part_name(index: int, generation: int) -> str:
    """
    The name of part ``index`` of a run's commit number ``generation``.

    :param index: position of the part in the run.
    :param generation: 1 for the first commit of a run id, then 2, 3 ...
    """
    return f"part-{index:05d}.jsonl" if generation <= 1 else f"part-{index:05d}.g{generation}.jsonl"


class StagingWriter:
    """
    Stream records of one run into JSON Lines part files and close the run with a manifest.

    Use it as a context manager: a clean exit writes the manifest, an exception leaves no manifest and
    no visible part file of this run. ``close()`` returns the :class:`Manifest`.

    A run id written again (a task retry) is committed so that a crash at any step leaves one complete
    manifest on storage, the earlier one or the new one, never none (see :meth:`close`).

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
        self._generation: int | None = None

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

    def write_many(self, records: Sequence[Message | GeneratedMessage]) -> None:
        """
        Append records as JSON lines, as :meth:`write` one after the other would (the same bytes and part
        files), with one write per part file.

        :param records: records of this writer's ``record_type``.
        """
        if self._manifest is not None or self._aborted:
            raise RuntimeError(f"staging run {self.run_id!r} is already closed")
        for record in records:
            if record.record_type != self.record_type:
                raise TypeError(
                    f"this writer stages {self.record_type!r} records, not {record.record_type!r}"
                )
        done, include_raw = 0, self.include_raw
        while done < len(records):
            if self._current is None or self._info["records"] >= self.max_records_per_file:
                self._start_part()
            batch = records[done : done + self.max_records_per_file - self._info["records"]]
            data = "".join([record.to_json(include_raw=include_raw) + "\n" for record in batch]).encode()
            self._current.file.write(data)
            self._info["records"] += len(batch)
            self._info["bytes"] += len(data)
            done += len(batch)

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

    @property
    def generation(self) -> int:
        """This commit's generation: one more than any manifest or part file of the run id on storage."""
        if self._generation is None:
            self._generation = _next_generation(self.directory)
        return self._generation

    def _start_part(self) -> None:
        if self._current is not None:
            self._current.finish()
        name = part_name(len(self._parts), self.generation)
        self._current = _TempFile(self.directory / name)
        self._info = {"name": name, "records": 0, "bytes": 0}
        self._parts.append((self._current, self._info))

    def close(self) -> Manifest:
        """
        Finish the run: make the part files visible, then write the manifest. Returns the manifest.

        The commit, in order, each step safe to die in:

        1. flush and fsync the hidden temporary part files;
        2. rename each onto its final name, which is this generation's own (``part-00000.g2.jsonl``): the
           manifest on storage, if any, lists other files, so it stays valid;
        3. write the new manifest to a hidden temporary file and fsync it;
        4. rename it onto ``manifest.json`` (atomic): the commit point, from the earlier run's complete
           manifest to this one's, with nothing removed before;
        5. delete what the earlier generations and killed attempts left (best effort).

        A failure (an ``OSError`` such as ENOSPC) deletes this generation's renamed parts unless the
        manifest on storage lists them (step 4 happened, a later step failed), and re-raises; the earlier
        manifest stays as it was. A crash leaves them behind, unlisted, for the next commit to delete.
        Calling it again returns the same manifest.
        """
        if self._manifest is not None:
            return self._manifest
        if self._aborted:
            raise RuntimeError(f"staging run {self.run_id!r} was aborted")
        committed: list[_TempFile] = []
        try:
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
                generation=self.generation,
                path=self.manifest_path,
            )
            for part, _ in self._parts:
                part.finish()
            for part, _ in self._parts:
                part.commit()
                committed.append(part)
            text = json.dumps(manifest.to_dict(), ensure_ascii=False)  # the C encoder (no indent), one write
            with atomic_write(self.manifest_path, "w") as f:
                f.write(text)
        except BaseException:
            self._remove_unlisted(committed)
            self.abort()
            raise
        self._manifest = manifest
        self._sweep({info["name"] for _, info in self._parts})
        return manifest

    def _remove_unlisted(self, committed: list[_TempFile]) -> None:
        """After a failed commit: delete its renamed parts, unless the manifest on storage lists them."""
        try:
            listed = {f["name"] for f in Manifest.load(self.manifest_path).files}
        except FileNotFoundError:
            listed = set()
        except Exception:  # cannot tell what it lists: leave them for the next commit's sweep
            return
        for part in committed:
            if part.path.name not in listed:
                with contextlib.suppress(Exception):
                    remove(part.path)

    def _sweep(self, keep: set[str]) -> None:
        """Best effort: delete what earlier generations and killed attempts of this run id left behind."""
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


def _next_generation(directory: ObjectStoragePath) -> int:
    """One more than the generation of the manifest and of every part file in ``directory`` (1 if none)."""
    newest = 0
    fs = filesystem(directory)
    try:
        names = [entry.rstrip("/").rsplit("/", 1)[-1] for entry in fs.ls(directory.path, detail=False)]
    except FileNotFoundError:
        return 1
    for name in names:
        match = _PART.match(name)
        if match:
            newest = max(newest, int(match.group("generation") or 1))
    if MANIFEST_NAME in names:
        with contextlib.suppress(FileNotFoundError, ValueError):
            newest = max(newest, Manifest.load(directory / MANIFEST_NAME).generation)
    return newest + 1
