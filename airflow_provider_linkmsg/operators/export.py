"""
Export staged records to files (JSON Lines, CSV, Parquet) on any object store, or to any SQL database.

Both operators read one or more staging manifests (paths, the XCom values of staging operators, or the
list a mapped staging task returns), stream the records, and return a small XCom value: paths, counts and
the destination, never messages. Each declares its destination as an Airflow Asset and puts the counts in
the asset event's ``extra``, so downstream DAGs can be scheduled on new messages.

The operators live in :mod:`~airflow_provider_linkmsg.operators.export_files` and
:mod:`~airflow_provider_linkmsg.operators.export_sql`, what they share in
:mod:`~airflow_provider_linkmsg.operators.export_common`; this module keeps the import path DAG files use.
"""

from __future__ import annotations

from airflow_provider_linkmsg.operators.export_common import destination_uri, resolve_manifests, run_data_date
from airflow_provider_linkmsg.operators.export_files import LinkMsgExportToFilesOperator
from airflow_provider_linkmsg.operators.export_sql import LinkMsgExportToSqlOperator

__all__ = [
    "LinkMsgExportToFilesOperator",
    "LinkMsgExportToSqlOperator",
    "destination_uri",
    "resolve_manifests",
    "run_data_date",
]
