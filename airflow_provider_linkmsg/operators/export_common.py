"""
What the file and SQL export operators share: the manifests they read, the counts and data date they
report, and the asset events and lineage of their destinations.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import Asset, AssetAlias, BaseOperator, ObjectStoragePath

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.operators.lineage import path_dataset

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_linkmsg.io.staging import Manifest


def resolve_manifests(value: Any, conn_id: str | None = None) -> list[Manifest]:
    """
    Load the staging manifests that ``value`` points at, in order and without duplicates.

    Accepts a path (``str`` or ObjectStoragePath) of a ``manifest.json`` or its run directory, a
    :class:`Manifest`, a dict with a ``manifest`` (or ``path``) key and optional ``conn_id`` (the XCom value
    of a staging operator), and any nesting of lists of those (a mapped task's XCom). A string that holds
    a rendered list or dict (``"[{'manifest': ...}]"``) is parsed.

    :param value: what to load.
    :param conn_id: connection of the staging store for paths given without one.
    """
    from airflow_provider_linkmsg.io.staging import Manifest
    from airflow_provider_linkmsg.validation import load_manifest, parse_literal

    found: dict[str, Manifest] = {}

    def visit(item: Any, item_conn_id: str | None) -> None:
        if item is None:
            return
        if isinstance(item, Manifest):
            found.setdefault(str(item.path), item)
        elif isinstance(item, ObjectStoragePath):
            found.setdefault(str(item), Manifest.load(item))
        elif isinstance(item, str):
            text = item.strip()
            if text[:1] in ("[", "{"):
                visit(parse_literal(text, field="manifests"), item_conn_id)
            elif text:
                manifest = load_manifest(text, item_conn_id)
                found.setdefault(str(manifest.path), manifest)
        elif isinstance(item, Mapping):
            path = item.get("manifest") or item.get("path")
            if not path:
                raise LinkMsgValidationError(
                    f"a manifest reference needs a 'manifest' or 'path' key, got {dict(item)!r}",
                    field="manifests",
                )
            visit(path, item.get("conn_id") or item_conn_id)
        elif isinstance(item, Iterable):
            for element in item:
                visit(element, item_conn_id)
        else:
            raise LinkMsgValidationError(
                f"cannot read a staging manifest from {type(item).__name__}: {item!r}; give a manifest path, "
                "a staging operator's XCom value or a list of them",
                field="manifests",
            )

    visit(value, conn_id)
    return list(found.values())


def manifest_counts(manifests: list[Manifest]) -> dict[str, Any]:
    """Records and manifests in all, by vendor and by record type: the XCom value's and events' counts."""
    by_vendor: Counter[str] = Counter()
    by_type: Counter[str] = Counter()
    for manifest in manifests:
        by_vendor[manifest.vendor] += manifest.record_count
        by_type[manifest.record_type] += manifest.record_count
    return {
        "records": sum(by_vendor.values()),
        "manifests": len(manifests),
        "by_vendor": dict(by_vendor),
        "by_record_type": dict(by_type),
    }


def run_data_date(context: Context | Mapping[str, Any]) -> str | None:
    """
    The data date (``YYYY-MM-DD``, UTC) of the DAG run in ``context``: its logical date (``ds``), else the
    start of its data interval, else the time it runs after (Airflow 3 runs without a logical date).
    ``None`` outside a DAG run.

    :param context: the task's context.
    """
    dag_run = context.get("dag_run")
    for value in (
        context.get("logical_date"),
        context.get("data_interval_start"),
        getattr(dag_run, "run_after", None),
    ):
        if value is not None:
            return value.astimezone(UTC).date().isoformat()
    return None


def is_templated(value: Any) -> bool:
    """Whether ``value`` may still be rendered (not a plain path): no asset is declared from it then."""
    return not isinstance(value, str | ObjectStoragePath) or any(t in str(value) for t in ("{{", "{%"))


def destination_uri(destination: str | ObjectStoragePath) -> str:
    """
    The asset URI of a file destination: ``file:///abs/path`` for local paths, else the URL without the
    connection id (``s3://bucket/prefix``).

    :param destination: the export's root, as given to the operator.
    """
    parts = urlsplit(str(destination))
    if not parts.scheme:
        return "file://" + os.path.abspath(parts.path)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path.rstrip('/')}"


def set_outlet_events(operator: BaseOperator, context: Context, extra: dict[str, Any], *uris: str) -> None:
    """Put ``extra`` on the operator's asset events (an alias gets one event per URI in ``uris``)."""
    for outlet in operator.outlets:
        if isinstance(outlet, Asset):
            context["outlet_events"][outlet].extra = dict(extra)
        elif isinstance(outlet, AssetAlias):
            for uri in uris:
                context["outlet_events"][outlet].add(Asset(uri), extra=alias_event_extra(extra))


def alias_event_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """
    An alias event's extra. Airflow 2 and 3 before 3.2 key these events by ``frozenset(extra.items())``, so
    there nested values (dicts, lists) travel as JSON text; later lines take the extra as it is.
    """
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_2_PLUS

    if AIRFLOW_V_3_2_PLUS:
        return dict(extra)
    return {k: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else v for k, v in extra.items()}


def ol_dataset(path: ObjectStoragePath):
    return path_dataset(path)  # one naming of paths for every operator (operators/lineage.py)
