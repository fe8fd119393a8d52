"""
Atomic writes: a file appears under its final name complete or not at all.

The data goes to a hidden temporary sibling ``.{name}.tmp-{uuid}`` (flushed and fsynced on the local
disk) that is renamed onto the final name when complete. On object stores the rename is the store's move
(copy then delete), and an object appears whole or not at all.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import IO, TYPE_CHECKING, Any

from airflow_provider_linkmsg.io.paths import filesystem, is_local, remove, to_path

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

#: a hidden temporary file this much older than a complete write of the same name was left by a killed one
STALE_TMP_SECONDS = 3600
#: files created and fsynced at once by :func:`write_files` (the disk's journal commits them together)
SYNC_THREADS = 8


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale_tmp(path: ObjectStoragePath) -> None:
    """Delete hidden ``.{name}.tmp-*`` siblings of ``path`` older than an hour: left by writes killed hard."""
    _remove_stale_in(path.parent.path, [path.name])


def _remove_stale_in(folder: str, names: Iterable[str]) -> None:
    """Delete hidden ``.{name}.tmp-*`` files in ``folder`` older than an hour, for each of ``names``."""
    prefixes, cutoff = tuple(f".{name}.tmp-" for name in names), time.time() - STALE_TMP_SECONDS
    with contextlib.suppress(OSError), os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(prefixes) and entry.stat().st_mtime < cutoff:
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


def write_files(files: Sequence[tuple[ObjectStoragePath, bytes]]) -> None:
    """
    Write several files, each appearing under its final name complete or not at all, as
    :func:`atomic_write` would one by one, with the disk's waits shared: on the local disk every temporary
    file is created, written and fsynced (:data:`SYNC_THREADS` at once, :func:`prepare_local`) before any
    is renamed, and each folder is fsynced once after the renames (:func:`publish_local`). On an error no
    temporary file is left and the files not yet renamed keep their old content. On object stores, one
    :func:`atomic_write` after the other.

    :param files: ``(final path, content)``.
    """
    if not files:
        return
    if not all(is_local(path) for path, _ in files):
        for path, content in files:
            with atomic_write(path) as f:
                f.write(content)
        return
    pairs: list[tuple[str, str]] = []
    try:
        with ThreadPoolExecutor(min(SYNC_THREADS, len(files)), thread_name_prefix="linkmsg-fsync") as pool:
            futures = [(path.path, pool.submit(prepare_local, path.path, content)) for path, content in files]
            for final, future in futures:
                with contextlib.suppress(Exception):
                    pairs.append((final, future.result()))
            for _, future in futures:
                future.result()  # the first error, once every temporary file made is known
    except BaseException:
        discard_local(tmp for _, tmp in pairs)
        raise
    publish_local(pairs)


def prepare_local(final: str, content: bytes) -> str:
    """
    Write ``content`` to a hidden temporary sibling of the local file ``final`` and fsync it; returns its
    path, for :func:`publish_local`. On an error nothing is left.
    """
    folder, name = os.path.split(final)
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{name}.tmp-{uuid.uuid4().hex}")
    try:
        with open(tmp, "wb") as f:
            f.write(content)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        discard_local([tmp])
        raise
    return tmp


def publish_local(pairs: Iterable[tuple[str, str]]) -> None:
    """
    Rename each prepared temporary file onto its final name (``(final, temporary)`` pairs), then fsync
    each folder once and delete the stale temporary files of those names. On an error the temporary files
    not yet renamed are deleted.
    """
    pairs = list(pairs)
    folders: dict[str, list[str]] = {}
    renamed = 0
    try:
        for final, tmp in pairs:
            os.replace(tmp, final)
            renamed += 1
            folder, name = os.path.split(final)
            folders.setdefault(folder, []).append(name)
    except BaseException:
        discard_local(tmp for _, tmp in pairs[renamed:])
        raise
    for folder, names in folders.items():
        _fsync_dir(folder)
        _remove_stale_in(folder, names)


def discard_local(tmps: Iterable[str]) -> None:
    """Delete temporary files, never raising."""
    for tmp in tmps:
        with contextlib.suppress(OSError):
            os.remove(tmp)
