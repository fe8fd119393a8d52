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
