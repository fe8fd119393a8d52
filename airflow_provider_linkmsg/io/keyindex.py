"""
One row per key in a file destination: the keys of every exported file, kept on disk beside the data.

Each exported data file has a *key file* under ``{destination}/_linkmsg_keys/`` (same relative path plus
``.keys``): a JSON header line ``{"file", "version", "run"}`` then the file's record keys, one a line. The
``_`` prefix keeps it out of what Spark, pyarrow/pandas datasets and Hive read; its suffix keeps it out of
``*.parquet`` / ``*.jsonl`` / ``*.csv`` globs (duckdb).

The *version* of a record is the ``created_at`` of the staging run that holds it: the later staging wins
(Koneksi's final retrieve over an ``allow_partial`` one; a re-staged run over its earlier export). Within
one staged run, the last occurrence of a key wins.

Memory stays bounded whatever the destination holds: the keys of the run being exported go to a
temporary SQLite file on the local disk, and the destination's key files are streamed through it in
batches; nothing holds a destination's history.

A key file always lists at least the keys its data file holds (it is written before the data file and
trimmed after it), so a crash leaves, at worst, a key listed for a record that is not there (harmless) or
a record twice until the export's retry removes it: never a record lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow_provider_linkmsg.io.atomic import atomic_write
from airflow_provider_linkmsg.io.paths import exists, filesystem, open_for_read, remove, safe_name
from airflow_provider_linkmsg.io.readers import iter_part_lines

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    from airflow_provider_linkmsg.io.manifest import Manifest

KEYS_DIR = "_linkmsg_keys"
KEYS_SUFFIX = ".keys"
_BATCH = 500


def key_of(line: bytes | str) -> str:
    """The ``key`` of a staged or exported JSON line."""
    return json.loads(line)["key"]


def keys_path(destination: ObjectStoragePath, relative: str) -> ObjectStoragePath:
    """
    The key file of the data file at ``relative`` (to ``destination``).

    :param destination: the export's root.
    :param relative: ``vendor=.../date=.../{name}``.
    """
    return destination / KEYS_DIR / f"{relative}{KEYS_SUFFIX}"


def write_keys(
    destination: ObjectStoragePath, relative: str, keys: Iterable[str], *, version: str, run: str
) -> None:
    """
    Write the key file of one data file, atomically.

    :param destination: the export's root.
    :param relative: the data file's path relative to ``destination``.
    :param keys: the keys the data file holds (or will hold).
    :param version: the staging time of its records (``Manifest.created_at``).
    :param run: the safe run id of its staging run.
    """
    with atomic_write(keys_path(destination, relative), "w") as f:
        f.write(json.dumps({"file": relative, "version": version, "run": run}) + "\n")
        for key in keys:
            f.write(key + "\n")


@dataclass
class KeyFile:
    """
    The key file of one exported data file.

    :param path: the key file.
    :param file: its data file, relative to the destination.
    :param version: the staging time of its records.
    :param run: the safe run id of its staging run.
    """

    path: ObjectStoragePath
    file: str
    version: str
    run: str

    def iter_keys(self) -> Iterator[str]:
        """Stream the keys (one line at a time)."""
        with open_for_read(self.path, "rb") as f:
            next(f, None)
            for line in f:
                if line.strip():
                    yield line.decode().rstrip("\n")


def load_key_file(destination: ObjectStoragePath, relative: str) -> KeyFile:
    """
    Read the header of the key file of the data file at ``relative``.

    :param destination: the export's root.
    :param relative: the data file's path relative to ``destination``.
    """
    path = keys_path(destination, relative)
    with open_for_read(path, "rb") as f:
        header = json.loads(f.readline())
    return KeyFile(path=path, file=header["file"], version=header["version"], run=header["run"])


def key_files(destination: ObjectStoragePath, vendor: str) -> Iterator[KeyFile]:
    """
    The key files of ``vendor``'s data files in ``destination``, in path order.

    :param destination: the export's root.
    :param vendor: the vendor whose partition to scan.
    """
    base = destination / KEYS_DIR
    root = base / f"vendor={safe_name(vendor)}"
    if not exists(root):
        return
    prefix = base.path.rstrip("/") + "/"
    for found in sorted(filesystem(root).find(root.path)):
        name = found.rsplit("/", 1)[-1]
        if name.endswith(KEYS_SUFFIX) and not name.startswith(".") and found.startswith(prefix):
            yield load_key_file(destination, found[len(prefix) : -len(KEYS_SUFFIX)])


class RunKeys:
    """
    The keys of one staged run on the local disk (a temporary SQLite file), for de-duplication.

    Use it as a context manager. :meth:`load` reads the run's keys (the last occurrence of a key wins);
    :meth:`compare` streams the destination's key files through it.

    :param manifest: the staged run.
    """

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.version = manifest.created_at
        self.run = safe_name(manifest.run_id)
        self._dir = tempfile.TemporaryDirectory(prefix="linkmsg-keys-")
        self.db = sqlite3.connect(os.path.join(self._dir.name, "keys.sqlite"))
        self.db.executescript(
            """
            PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-8000;
            CREATE TABLE run_keys (key TEXT PRIMARY KEY, part INT, line INT, older INT DEFAULT 0);
            CREATE INDEX run_keys_part ON run_keys (part, line);
            CREATE TABLE superseded (file TEXT, key TEXT);
            CREATE INDEX superseded_file ON superseded (file);
            """
        )

    def __enter__(self) -> RunKeys:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Delete the temporary database."""
        with contextlib.suppress(Exception):
            self.db.close()
        self._dir.cleanup()

    def load(self) -> None:
        """Read the keys of every part of the run (staged lines are parsed one at a time)."""
        for part in range(len(self.manifest.files)):
            rows = ((key_of(line), part, n) for n, line in enumerate(iter_part_lines(self.manifest, part)))
            self.db.executemany("INSERT OR REPLACE INTO run_keys (key, part, line) VALUES (?, ?, ?)", rows)

    def kept_lines(self, part: int) -> Iterator[int]:
        """Line numbers of ``part`` to export: the winning occurrence of keys no newer export holds."""
        query = "SELECT line FROM run_keys WHERE part = ? AND older = 0 ORDER BY line"
        for (line,) in self.db.execute(query, (part,)):
            yield line

    def kept_keys(self, part: int) -> Iterator[str]:
        """The keys that :meth:`kept_lines` exports, in line order."""
        query = "SELECT key FROM run_keys WHERE part = ? AND older = 0 ORDER BY line"
        for (key,) in self.db.execute(query, (part,)):
            yield key

    def compare(self, key_file: KeyFile) -> int:
        """
        Match an exported file's keys against the run: a key the run holds in a newer version is recorded
        as superseded in that file; one the file holds in a newer version is dropped from the run.
        Returns the number of keys in common.

        :param key_file: the key file of a data file that this export does not overwrite.
        """
        common = 0
        theirs_newer = key_file.version > self.version
        batch: list[str] = []

        def flush() -> int:
            marks = ",".join("?" * len(batch))
            found = [k for (k,) in self.db.execute(f"SELECT key FROM run_keys WHERE key IN ({marks})", batch)]
            if theirs_newer:
                self.db.executemany("UPDATE run_keys SET older = 1 WHERE key = ?", ((k,) for k in found))
            else:
                self.db.executemany(
                    "INSERT INTO superseded (file, key) VALUES (?, ?)", ((key_file.file, k) for k in found)
                )
            batch.clear()
            return len(found)

        for key in key_file.iter_keys():
            batch.append(key)
            if len(batch) >= _BATCH:
                common += flush()
        if batch:
            common += flush()
        return common

    def superseded_files(self) -> list[str]:
        """Exported files that hold keys this run replaces."""
        return [f for (f,) in self.db.execute("SELECT DISTINCT file FROM superseded ORDER BY file")]

    def superseded_keys(self, file: str) -> set[str]:
        """The keys to remove from ``file`` (at most the keys of that one file)."""
        return {k for (k,) in self.db.execute("SELECT key FROM superseded WHERE file = ?", (file,))}

    def older_count(self) -> int:
        """Keys of the run that the destination already holds in a newer version."""
        return self.db.execute("SELECT COUNT(*) FROM run_keys WHERE older = 1").fetchone()[0]


def remove_keys_file(destination: ObjectStoragePath, relative: str) -> None:
    """Delete the key file of ``relative`` (after its data file is gone)."""
    remove(keys_path(destination, relative))
