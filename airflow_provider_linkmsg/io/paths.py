"""
Paths on any store: coercion to :class:`ObjectStoragePath`, path-safe names, the fsspec filesystem behind
a path, and the small file operations that staging, state and the exports share.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from typing import IO, TYPE_CHECKING

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

_LOCAL_PROTOCOLS = ("", "file", "local")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


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


def conn_id_of(path: ObjectStoragePath) -> str | None:
    """
    The Airflow connection of ``path``, on either ObjectStoragePath.

    Airflow 3's ``airflow.sdk`` path has a ``conn_id`` attribute; Airflow 2's ``airflow.io.path`` keeps the
    connection in ``storage_options["conn_id"]`` and has no such attribute.
    """
    conn_id = getattr(path, "conn_id", None)
    if conn_id is None:
        conn_id = (getattr(path, "storage_options", None) or {}).get("conn_id")
    return conn_id or None


def filesystem(path: ObjectStoragePath) -> AbstractFileSystem:
    """
    The fsspec filesystem of ``path``.

    Airflow only knows the schemes that a provider registers (``file``, ``s3``, ``gs`` ...); any other
    fsspec scheme (``memory``, ``sftp`` ...) is used through fsspec directly when no connection is given.
    """
    try:
        return path.fs
    except ValueError:
        if conn_id_of(path):
            raise
        import fsspec

        options = {k: v for k, v in path.storage_options.items() if k != "conn_id"}
        return fsspec.filesystem(path.protocol, **options)


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
