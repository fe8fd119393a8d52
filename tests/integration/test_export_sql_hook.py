"""
The SQL export finds its database hook as common-sql's ``BaseSQLOperator`` does.

It no longer derives from ``BaseSQLOperator`` (importing common-sql costs a DAG file more than its parse
budget, see ``tests/e2e/test_parse_cost.py``), so its ``get_db_hook`` is compared here with the one of a
real common-sql operator over the same connections.
"""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.sql.operators.sql import SQLExecuteQueryOperator

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.operators.export import LinkMsgExportToSqlOperator


@pytest.fixture
def connections(tmp_path, monkeypatch):
    """A SQLite connection with an extra, and a file-system connection (not a database)."""
    monkeypatch.setenv(
        "AIRFLOW_CONN_LINKMSG_HOOK_SQLITE",
        json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "w.db"), "extra": {"log_sql": False}}),
    )
    monkeypatch.setenv("AIRFLOW_CONN_LINKMSG_HOOK_FS", json.dumps({"conn_type": "fs"}))
    return "linkmsg_hook_sqlite", "linkmsg_hook_fs"


def both(conn_id: str, **kwargs):
    ours = LinkMsgExportToSqlOperator(task_id="ours", manifests=[], conn_id=conn_id, **kwargs)
    theirs = SQLExecuteQueryOperator(task_id="theirs", sql="select 1", conn_id=conn_id, **kwargs)
    return ours, theirs


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"database": "main"}, {"hook_params": {"log_sql": True}}, {"database": "x", "hook_params": {}}],
    ids=["plain", "database", "hook_params", "both"],
)
def test_the_hook_is_the_one_common_sql_finds(connections, kwargs):
    ours, theirs = both(connections[0], **kwargs)
    mine, reference = ours.get_db_hook(), theirs.get_db_hook()
    assert type(mine) is type(reference)
    assert (getattr(mine, "schema", None), mine.log_sql, mine.get_conn_id()) == (
        getattr(reference, "schema", None),
        reference.log_sql,
        reference.get_conn_id(),
    )
    assert ours.get_db_hook() is mine  # built once per task, as common-sql caches it
    assert set(theirs.template_fields) - {"sql", "parameters"} <= set(ours.template_fields)


def test_a_connection_that_is_no_database_is_refused_naming_it(connections):
    ours, theirs = both(connections[1])
    with pytest.raises(Exception, match="common-sql"):
        theirs.get_db_hook()
    with pytest.raises(LinkMsgValidationError, match=r"linkmsg_hook_fs.*not a SQL database connection"):
        ours._db_hook()
