"""
Staging: records as JSON Lines part files plus a manifest, under any :class:`ObjectStoragePath`.

A run of an operator writes its records under ``{root}/{vendor}/{safe run_id}/``::

    part-00000.jsonl    one record per line (Message.to_json / GeneratedMessage.to_json)
    part-00001.jsonl    a new part every ``max_records_per_file`` records
    manifest.json       written last: the commit marker of the run

Nothing is ever visible half written. Every file is written under a hidden temporary sibling
(``.{name}.tmp-{uuid}``) and renamed onto its final name only when complete; the part files of a run are
renamed only when the whole run is written, and the manifest after them. A reader that goes through the
manifest (:func:`iter_records`) therefore sees a complete run or none.

A run id written again (a task retry, which carries over what the failed try staged) commits a new
*generation*: its parts get names of their own (``part-00000.g2.jsonl``), the new manifest replaces
``manifest.json`` in one atomic rename, and only then are the earlier generation's files deleted. A
crash or an ``OSError`` at any step leaves one complete manifest on storage, the earlier or the new one,
so nothing that watermarks already count as staged is ever lost (:meth:`StagingWriter.close` lists the
steps). What a killed attempt leaves (hidden temporary files, unlisted parts) is deleted by the next
commit of the run id.

The code lives in small modules, re-exported here for callers:

- :mod:`.paths`: coercion to ObjectStoragePath, path-safe names, the filesystem of a path;
- :mod:`.atomic`: writes that appear complete or not at all;
- :mod:`.manifest`: :class:`Manifest`, the commit marker of a run;
- :mod:`.writer`: :class:`StagingWriter`;
- :mod:`.readers`: :func:`iter_records` and friends.
"""

from __future__ import annotations

from airflow_provider_linkmsg.io.atomic import STALE_TMP_SECONDS, atomic_write
from airflow_provider_linkmsg.io.manifest import MANIFEST_NAME, Manifest
from airflow_provider_linkmsg.io.paths import (
    conn_id_of,
    exists,
    filesystem,
    is_local,
    open_for_read,
    remove,
    safe_name,
    staging_root,
    to_path,
)
from airflow_provider_linkmsg.io.readers import iter_part, iter_part_lines, iter_records
from airflow_provider_linkmsg.io.writer import StagingWriter

__all__ = [
    "MANIFEST_NAME",
    "STALE_TMP_SECONDS",
    "Manifest",
    "StagingWriter",
    "atomic_write",
    "conn_id_of",
    "exists",
    "filesystem",
    "is_local",
    "iter_part",
    "iter_part_lines",
    "iter_records",
    "open_for_read",
    "remove",
    "safe_name",
    "staging_root",
    "to_path",
]
