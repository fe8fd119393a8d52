"""
What the tests need from Airflow, the same on every tested line (2.11, 3.0, 3.3).

DAG-authoring names come from the common.compat layer (as in the provider); the metadata-database side,
which the compat layer does not cover, is mapped here. Where a line truly lacks something, the marker below
skips with the reason in the skip, never silently.

The Airflow version is read from the installed distribution, so importing this module does not import
Airflow before ``tests/conftest.py`` has fixed its environment.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import pytest
from packaging.version import Version

AIRFLOW_VERSION = Version(Version(version("apache-airflow")).base_version)
AIRFLOW_V_3_0_PLUS = Version("3.0.0") <= AIRFLOW_VERSION
AIRFLOW_V_3_1_PLUS = Version("3.1.0") <= AIRFLOW_VERSION
AIRFLOW_V_3_2_PLUS = Version("3.2.0") <= AIRFLOW_VERSION
AIRFLOW_V_3_3_PLUS = Version("3.3.0") <= AIRFLOW_VERSION
AIRFLOW_LINE = f"{AIRFLOW_VERSION.major}.{AIRFLOW_VERSION.minor}"


def requires_airflow(minimum: str, why: str) -> pytest.MarkDecorator:
    """Skip on lines older than ``minimum``, saying which line and why it cannot run there."""
    return pytest.mark.skipif(
        Version(minimum) > AIRFLOW_VERSION,
        reason=f"needs Airflow >= {minimum} (this is {AIRFLOW_VERSION}): {why}",
    )


def sync_bundles() -> None:
    """Airflow 3: the ``dags-folder`` bundle row that serialized DAGs refer to. Airflow 2 has no bundles."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.dag_processing.bundles.manager import DagBundlesManager

        DagBundlesManager().sync_bundles_to_db()


def dag_bag(dag_folder: str = "/nonexistent", **kwargs: Any):
    """An empty (or folder-filled) ``DagBag``: ``airflow.dag_processing.dagbag`` from 3.1, ``airflow.models`` before."""
    if AIRFLOW_V_3_1_PLUS:
        from airflow.dag_processing.dagbag import DagBag
    else:
        from airflow.models.dagbag import DagBag
    return DagBag(dag_folder=dag_folder, **kwargs)


def sync_dag_to_db(dag) -> None:
    """Serialize one DAG into the metadata database the way the DAG processor does on each line."""
    bag = dag_bag(collect_dags=False)
    if AIRFLOW_V_3_0_PLUS:
        bag.bag_dag(dag)
    else:
        bag.bag_dag(dag, root_dag=dag)
    if AIRFLOW_V_3_1_PLUS:
        from airflow.dag_processing.dagbag import sync_bag_to_db

        sync_bag_to_db(bag, bundle_name="dags-folder", bundle_version=None)
    elif AIRFLOW_V_3_0_PLUS:
        if dag.relative_fileloc is None:  # 3.0's DagBag sets it only while it parses a file
            dag.relative_fileloc = dag.fileloc
        bag.sync_to_db(bundle_name="dags-folder", bundle_version=None)
    else:
        bag.sync_to_db()


def xcom_model():
    """The XCom table's ORM model: ``XComModel`` on Airflow 3, ``XCom`` on 2."""
    from airflow.models import xcom

    return xcom.XComModel if AIRFLOW_V_3_0_PLUS else xcom.XCom


def xcom_row_value(row) -> Any:
    """The deserialized value of an XCom table row (Airflow 2's ``XCom`` deserializes its rows as it loads them)."""
    if AIRFLOW_V_3_0_PLUS:
        return row.__class__.deserialize_value(row)
    return row.value


def asset_event_model():
    """The asset (2.x: dataset) event table's ORM model."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent
    else:
        from airflow.models.dataset import DatasetEvent as AssetEvent
    return AssetEvent


def outlet_event_accessors():
    """A fresh ``OutletEventAccessors`` (the ``outlet_events`` of a task's context) on each line."""
    if AIRFLOW_V_3_0_PLUS:
        from airflow.sdk.execution_time.context import OutletEventAccessors
    else:
        from airflow.utils.context import OutletEventAccessors
    return OutletEventAccessors()


def xcom_value(dag_run, task_id: str, key: str = "return_value") -> Any:
    """The deserialized XCom ``key`` that ``task_id`` pushed in ``dag_run`` (None when there is none)."""
    from airflow.utils.session import create_session

    with create_session() as session:
        if AIRFLOW_V_3_0_PLUS:
            from airflow.models.xcom import XComModel

            query = XComModel.get_many(
                run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key
            )
            row = session.scalars(query).first()
            return None if row is None else XComModel.deserialize_value(row)
        from airflow.models.xcom import XCom

        return XCom.get_one(
            run_id=dag_run.run_id, dag_id=dag_run.dag_id, task_id=task_id, key=key, session=session
        )


def reschedule_count(session, ti) -> int:
    """How often the task instance ``ti`` was rescheduled (sensor ``mode="reschedule"``)."""
    from airflow.models.taskreschedule import TaskReschedule
    from sqlalchemy import func, select

    query = select(func.count()).select_from(TaskReschedule)
    if AIRFLOW_V_3_0_PLUS:
        query = query.where(TaskReschedule.ti_id == ti.id)
    else:
        query = query.where(
            TaskReschedule.dag_id == ti.dag_id,
            TaskReschedule.task_id == ti.task_id,
            TaskReschedule.run_id == ti.run_id,
            TaskReschedule.map_index == ti.map_index,
        )
    return session.scalar(query)


#: Airflow 3.3's task context gives ``task_state_store``; before it, the provider keeps a task run's values
#: (a Linked API job handle, a Koneksi request id) in a state file under the staging root.
HAS_TASK_STATE_STORE = AIRFLOW_V_3_3_PLUS


def execute(operator, context: dict[str, Any]) -> Any:
    """
    ``operator.execute(context)``, also from a thread of the test's own. Airflow 2's ``ExecutorSafeguard``
    keeps its callers in a thread-local that only the importing thread has, so a direct ``execute`` in
    another thread fails there with ``AttributeError: callers`` before the operator runs.
    """
    if not AIRFLOW_V_3_0_PLUS:
        from airflow.models.baseoperator import ExecutorSafeguard

        if not hasattr(ExecutorSafeguard._sentinel, "callers"):
            ExecutorSafeguard._sentinel.callers = {}
    return operator.execute(context)


def task_log_text(capture, caplog) -> str:
    """
    What the task logged since the last read: Airflow 3's structured task log goes to stdout (``capture`` is
    ``capsys`` or ``capfd``); Airflow 2 logs through stdlib logging, whose handlers a ``dag.test()`` earlier in
    the session may have redirected, so its records are read from ``caplog``.
    """
    out = capture.readouterr().out
    if AIRFLOW_V_3_0_PLUS:
        return out
    text = "\n".join(record.getMessage() for record in caplog.records)
    caplog.clear()
    return text


def task_log_lines(capture, caplog) -> list[tuple[float, str]]:
    """The task log's lines since the last read, each with its time (POSIX seconds); see :func:`task_log_text`."""
    import re
    from datetime import datetime

    out = capture.readouterr().out
    records = [(record.created, record.getMessage()) for record in caplog.records]
    caplog.clear()
    if not AIRFLOW_V_3_0_PLUS:
        return records
    stamp = re.compile(r"^(\S+Z) \[")  # the SDK's structured log: "2026-01-01T00:00:00.000000Z [info  ] ..."
    lines = []
    for line in out.splitlines():
        if found := stamp.match(line):
            lines.append((datetime.fromisoformat(found[1].replace("Z", "+00:00")).timestamp(), line))
    # Airflow 3.0 logs an operator called outside the task runner through stdlib logging, as 2.x does
    return lines or records


def storage_uri(uri: str) -> str:
    """
    ``uri`` as this line's ``ObjectStoragePath`` prints it: Airflow 2's paths on fsspec's ``memory`` store are
    rooted (``memory:///bucket/key`` for ``memory://bucket/key``, the same file); other schemes are unchanged.
    """
    from airflow.providers.common.compat.sdk import ObjectStoragePath

    return str(ObjectStoragePath(uri))


def asset_name(asset) -> str:
    """An asset's name; an Airflow 2 dataset has none but its URI (what the compat layer's ``Asset`` maps to)."""
    return asset.name if AIRFLOW_V_3_0_PLUS else asset.uri


def alias_events(accessor) -> list[tuple[str, dict[str, Any]]]:
    """
    The (asset URI, extra) of each event a task added through an asset alias (``outlet_events[alias]``):
    ``asset_alias_events`` on Airflow 3, ``dataset_alias_events`` (dicts) on 2; extras as in :func:`alias_extra`.
    """
    if AIRFLOW_V_3_0_PLUS:
        return [(e.dest_asset_key.uri, alias_extra(e.extra)) for e in accessor.asset_alias_events]
    return [(e["dest_dataset_uri"], alias_extra(e["extra"])) for e in accessor.dataset_alias_events]


def alias_extra(extra: dict[str, Any]) -> dict[str, Any]:
    """
    An alias event's extra as its consumer reads it: before Airflow 3.2 the provider sends nested values
    (dicts, lists) as JSON text, since 2.x and 3.0 key alias events by their hashable extra; 3.2+ keep them.
    """
    import json

    if AIRFLOW_V_3_2_PLUS:
        return extra
    return {k: json.loads(v) if isinstance(v, str) and v[:1] in ("{", "[") else v for k, v in extra.items()}


def schedule_condition(dag):
    """The asset (2.x: dataset) condition a DAG is scheduled on, or None when it is not asset-scheduled."""
    name = "asset_condition" if AIRFLOW_V_3_0_PLUS else "dataset_condition"
    condition = getattr(dag.timetable, name, None)
    # Airflow 2 gives every timetable a condition: a null one when the DAG is not scheduled on datasets
    return None if type(condition).__name__ in ("_NullDataset", "_NullAsset") else condition


def asset_events_of(uri: str, session) -> list[Any]:
    """The asset (2.x: dataset) events recorded in the metadata DB for ``uri``, oldest first."""
    from sqlalchemy import select

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.asset import AssetEvent as Event
        from airflow.models.asset import AssetModel as Model

        key = Event.asset_id
    else:
        from airflow.models.dataset import DatasetEvent as Event
        from airflow.models.dataset import DatasetModel as Model

        key = Event.dataset_id
    query = select(Event).join(Model, key == Model.id).where(Model.uri == uri).order_by(Event.id)
    return list(session.scalars(query))


def rendered_map_index(ti) -> str | None:
    """A task instance's rendered map label: the ``_rendered_map_index`` column on Airflow 3, a plain one on 2."""
    return ti._rendered_map_index if AIRFLOW_V_3_0_PLUS else ti.rendered_map_index
