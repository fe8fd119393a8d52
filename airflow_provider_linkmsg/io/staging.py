"""
Staging: records as JSON Lines part files plus a manifest, under any :class:`ObjectStoragePath`.

A run of an operator writes its records under ``{root}/{vendor}/{safe run_id}/``::

    part-00000.jsonl    one record per line (Message.to_json / GeneratedMessage.to_json)
    part-00001.jsonl    a new part every ``max_records_per_file`` records
    manifest.json       written last: the commit marker of the run

Nothing is ever visible half written. Every file is written under a hidden temporary sibling
(``.{name}.tmp-{uuid}``) and renamed onto its final name only when complete; the part files of a run are
renamed only when the whole run is written, and the manifest after them. A reader that goes through the
manifest (:func:`iter_records`) therefore sees a complete run or none: a crash leaves hidden temporary
files at worst (on the local disk, the next complete write of the same name deletes those older than an
hour), and the previous manifest of the same run id, if any, stays valid until the new parts replace it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_linkmsg.exceptions import LinkMsgError, LinkMsgValidationError
from airflow_provider_linkmsg.records import RECORD_TYPES, GeneratedMessage, Message, to_utc_iso

if TYPE_CHECKING:
    from types import TracebackType

    from fsspec import AbstractFileSystem

MANIFEST_NAME = "manifest.json"
_LOCAL_PROTOCOLS = ("", "file", "local")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
#: a hidden temporary file this much older than a complete write of the same name was left by a killed one
STALE_TMP_SECONDS = 3600
_RUN_FILE = re.compile(r"^(part-\d+\.jsonl|\.part-\d+\.jsonl\.tmp-\w+|\.manifest\.json\.tmp-\w+)$")


def safe_name(value: str, *, max_length: int = 80) -> str:
    """
    Make ``value`` usable as one path segment on any store, deterministically.

    Safe values come back unchanged; otherwise unsafe runs of characters become ``_`` and a short hash of
    the original is appended, so ``manual__2024-05-01T00:00:00+00:00`` and ``manual__2024-05-01T00_00_00``
    never collide.

    :param value: an account id, run id, conversation id ...
    :param max_length: longest readable part kept before the hash.
    """
    cleaned = _UNSAFE.sub("_", value).strip("._")
    if value and cleaned == value and len(value) <= max_length:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:10]
    return f"{cleaned[:max_length]}-{digest}" if cleaned else digest


def to_path(path: str | os.PathLike | ObjectStoragePath, conn_id: str | None = None) -> ObjectStoragePath:
    """
    Coerce a string or path to an :class:`ObjectStoragePath`.

    :param path: ``/local/dir``, ``file:///dir``, ``s3://bucket/key``, ``memory://x`` ...
    :param conn_id: Airflow connection of the store; ignored when ``path`` is already an ObjectStoragePath.
    """
    if isinstance(path, ObjectStoragePath):
        return path
    return ObjectStoragePath(os.fspath(path), conn_id=conn_id)


def staging_root(
    path: str | os.PathLike | ObjectStoragePath | None,
    conn_id: str | None = None,
    *,
    field: str = "staging_path",
) -> ObjectStoragePath:
    """
    The root of staged data and state, checked before any paid call: a scheme that fsspec knows, and not
    an existing file. ``None`` or ``""`` means the configured default (``[linkmsg] staging_path``).

    :param path: the operator's ``staging_path``.
    :param conn_id: its ``staging_conn_id``.
    :param field: the argument to name in the error.
    """
    from airflow_provider_linkmsg.utils import default_staging_root

    try:
        root = to_path(path or default_staging_root(), conn_id)
        is_file = filesystem(root).isfile(root.path)
    except Exception as exc:  # an unknown scheme, a missing fsspec extra, a refused connection
        raise LinkMsgValidationError(
            f"{field} {str(path)!r} cannot be used ({type(exc).__name__}: {exc}); give a folder or an fsspec "
            f"URL (s3://, gs:// ...) whose filesystem is installed, with its connection in {field[:-5]}_conn_id",
            field=field,
        ) from None
    if is_file:
        raise LinkMsgValidationError(f"{field} {str(path)!r} is a file; give a folder", field=field)
    return root


def filesystem(path: ObjectStoragePath) -> AbstractFileSystem:
    """
    The fsspec filesystem of ``path``.

    Airflow only knows the schemes that a provider registers (``file``, ``s3``, ``gs`` ...); any other
    fsspec scheme (``memory``, ``sftp`` ...) is used through fsspec directly when no connection is given.
    """
    try:
        return path.fs
    except ValueError:
        if path.conn_id:
            raise
        import fsspec

        return fsspec.filesystem(path.protocol, **path.storage_options)


def is_local(path: ObjectStoragePath) -> bool:
    """Whether ``path`` is on the local disk (where fsync and an atomic rename exist)."""
    return path.protocol in _LOCAL_PROTOCOLS


def open_for_read(path: ObjectStoragePath, mode: str = "rb") -> IO:
    """Open an existing file for streaming reads (the builtin ``open`` for local files)."""
    if is_local(path):
        return open(path.path, mode)
    return filesystem(path).open(path.path, mode)


def exists(path: ObjectStoragePath) -> bool:
    """Whether a file or directory exists at ``path``."""
    return filesystem(path).exists(path.path)


def remove(path: ObjectStoragePath) -> None:
    """Delete the file at ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        filesystem(path).rm_file(path.path)


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_tmp(path: ObjectStoragePath) -> None:
    """Delete hidden ``.{name}.tmp-*`` siblings of ``path`` older than an hour: left by writes killed hard."""
    prefix, cutoff = f".{path.name}.tmp-", time.time() - STALE_TMP_SECONDS
    with contextlib.suppress(OSError), os.scandir(path.parent.path) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.stat().st_mtime < cutoff:
                with contextlib.suppress(OSError):
                    os.remove(entry.path)


class _TempFile:
    """
    A file written under a hidden temporary sibling of ``path``, moved onto ``path`` by :meth:`commit`.

    :param path: the final name.
    :param mode: ``wb`` or ``w``.
    :param open_kwargs: ``encoding``, ``newline`` ... for text mode.
    """

    def __init__(self, path: ObjectStoragePath, mode: str = "wb", **open_kwargs: Any) -> None:
        if not mode.startswith("w"):
            raise ValueError(f"atomic writes need a write mode ('w' or 'wb'), not {mode!r}")
        self.path = path
        self.tmp = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex}"
        self._fs = filesystem(path)
        self._local = is_local(path)
        if "b" not in mode:
            open_kwargs.setdefault("encoding", "utf-8")
        if self._local:
            os.makedirs(path.parent.path, exist_ok=True)
            self.file: IO = open(self.tmp.path, mode, **open_kwargs)  # noqa: SIM115 - closed in finish()
        else:
            self._fs.makedirs(path.parent.path, exist_ok=True)
            self.file = self._fs.open(self.tmp.path, mode, **open_kwargs)

    def finish(self) -> None:
        """Flush and close the temporary file; on the local disk, fsync it so the data is durable."""
        if self.file.closed:
            return
        self.file.flush()
        if self._local:
            os.fsync(self.file.fileno())
        self.file.close()

    def commit(self) -> None:
        """Move the complete temporary file onto the final name (an atomic rename on the local disk)."""
        self.finish()
        if self._local:
            os.replace(self.tmp.path, self.path.path)
            _fsync_dir(self.path.parent.path)
            _remove_stale_tmp(self.path)
        else:
            self._fs.mv(self.tmp.path, self.path.path)

    def discard(self) -> None:
        """Close and delete the temporary file, never raising (used on the failure path)."""
        with contextlib.suppress(Exception):
            self.file.close()
        with contextlib.suppress(Exception):
            remove(self.tmp)


@contextlib.contextmanager
def atomic_write(
    path: str | ObjectStoragePath, mode: str = "wb", *, conn_id: str | None = None, **open_kwargs: Any
) -> Iterator[IO]:
    """
    Write a file that appears under its final name complete or not at all.

    The data goes to a hidden sibling ``.{name}.tmp-{uuid}`` (flushed and fsynced on the local disk) that
    is renamed onto ``path`` when the block ends; on an exception the temporary file is deleted and the
    exception re-raised. On object stores the rename is the store's move (copy then delete).

    :param path: final location.
    :param mode: ``wb`` (default) or ``w`` (UTF-8 text unless ``encoding`` is given).
    :param conn_id: connection of the store when ``path`` is a string.
    :param open_kwargs: passed to ``open`` (``encoding``, ``newline`` ...).
    """
    target = _TempFile(to_path(path, conn_id), mode, **open_kwargs)
    try:
        yield target.file
        target.commit()
    except BaseException:
        target.discard()
        raise


def _now_iso() -> str:
    return to_utc_iso(datetime.now(UTC))


@dataclass
class Manifest:
    """
    The description of one staged run; its presence on storage means the run is complete.

    :param vendor: vendor of the records.
    :param record_type: ``message`` or ``generated_message``.
    :param run_id: the run id given to the writer (unsanitized).
    :param files: one ``{"name", "records", "bytes"}`` per part file, names relative to the manifest.
    :param record_count: records in all parts.
    :param watermarks: the watermarks that the data covers, as the operator set them.
    :param api_calls: vendor calls made to produce the data.
    :param credits: vendor credits spent.
    :param created_at: UTC ISO-8601 time the run was closed.
    :param extra: further counters or facts from the operator.
    :param include_raw: whether records carry the vendor's raw JSON.
    :param path: where the manifest lives (not serialized).
    """

    vendor: str
    record_type: str
    run_id: str
    files: list[dict[str, Any]] = field(default_factory=list)
    record_count: int = 0
    watermarks: dict[str, Any] = field(default_factory=dict)
    api_calls: int = 0
    credits: int | float = 0
    created_at: str = field(default_factory=_now_iso)
    extra: dict[str, Any] = field(default_factory=dict)
    include_raw: bool = False
    path: ObjectStoragePath | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``manifest.json`` (without ``path``)."""
        data = dataclasses.asdict(dataclasses.replace(self, path=None))
        data.pop("path")
        return {"version": 1, **data}

    @classmethod
    def load(cls, path: str | ObjectStoragePath, conn_id: str | None = None) -> Manifest:
        """
        Read a manifest.

        :param path: the ``manifest.json`` file or the run directory that holds it.
        :param conn_id: connection of the store when ``path`` is a string.
        """
        target = to_path(path, conn_id)
        if not target.name.endswith(".json"):
            target = target / MANIFEST_NAME
        try:
            with open_for_read(target) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"No staging manifest at {target}: the staging run did not complete (or the path is wrong)."
            ) from None
        names = {f.name for f in dataclasses.fields(cls)} - {"path"}
        return cls(**{k: v for k, v in data.items() if k in names}, path=target)

    @property
    def directory(self) -> ObjectStoragePath:
        """The run directory (where the part files are)."""
        if self.path is None:
            raise ValueError("this manifest has no path: it was not written or loaded")
        return self.path.parent

    def part_paths(self) -> list[ObjectStoragePath]:
        """Paths of the part files, in order."""
        return [self.directory / f["name"] for f in self.files]

    def summary(self) -> dict[str, Any]:
        """A small JSON value for XCom: where the manifest is and what it counts, never the records."""
        return {
            "manifest": str(self.path),
            "conn_id": self.path.conn_id if self.path is not None else None,
            "vendor": self.vendor,
            "record_type": self.record_type,
            "run_id": self.run_id,
            "records": self.record_count,
            "files": len(self.files),
            "api_calls": self.api_calls,
            "credits": self.credits,
        }


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
