"""
Missing optional dependencies fail before anything is written, naming the extra; one asset URI per table.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.io.extras import require_sql_provider
from airflow_provider_linkmsg.io.sql import sql_asset_alias, sql_table_uri
from airflow_provider_linkmsg.io.staging import StagingWriter
from airflow_provider_linkmsg.operators.export import (
    LinkMsgExportToFilesOperator,
    LinkMsgExportToSqlOperator,
)
from airflow_provider_linkmsg.records import Message

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"


def _staged(root: Path, n: int = 5):
    with StagingWriter(root, vendor="linkup", record_type="message", run_id="r") as writer:
        for i in range(n):
            writer.write(
                Message(
                    vendor="linkup",
                    account_id="acc_1",
                    conversation_id="conv-1",
                    message_id=f"msg-{i}",
                    sent_at=f"2024-05-01T00:00:0{i}.000000Z",
                    direction="inbound",
                    sender_id="person-1",
                    sender_name=None,
                    text=f"hello {i}",
                    message_type="TEXT",
                    has_attachments=False,
                    channel="standard",
                )
            )
    return writer.close()


def _run(operator):
    from tests.compat import outlet_event_accessors

    return operator.execute({"outlet_events": outlet_event_accessors()})


def test_parquet_without_pyarrow_names_the_extra_before_any_folder_is_made(tmp_path, monkeypatch):
    manifest = _staged(tmp_path / "staging")
    for name in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError
    out = tmp_path / "out"
    operator = LinkMsgExportToFilesOperator(
        task_id="export", manifests=manifest.summary(), destination=str(out), file_format="parquet"
    )
    with pytest.raises(LinkMsgValidationError, match=r'pip install "airflow-provider-linkmsg\[parquet\]"'):
        _run(operator)
    assert not out.exists(), f"the failed export left {sorted(p.name for p in out.rglob('*'))}"


def test_sql_export_to_a_database_whose_provider_is_missing_names_the_package(tmp_path, monkeypatch):
    """MySQL's provider is not installed here: a real connection of that type, a real lookup."""
    manifest = _staged(tmp_path / "staging")
    monkeypatch.setenv(
        "AIRFLOW_CONN_MYSQL_WH", json.dumps({"conn_type": "mysql", "host": "127.0.0.1", "schema": "wh"})
    )
    operator = LinkMsgExportToSqlOperator(task_id="export", manifests=manifest.summary(), conn_id="mysql_wh")
    with pytest.raises(LinkMsgValidationError) as err:
        _run(operator)
    message = str(err.value)
    assert "'mysql_wh'" in message and "'mysql'" in message
    assert 'pip install "apache-airflow-providers-mysql"' in message


@pytest.mark.parametrize(
    ("conn_type", "hint"),
    [
        (
            "postgres",
            'pip install "airflow-provider-linkmsg[postgres]" (or apache-airflow-providers-postgres)',
        ),
        ("sqlite", 'pip install "airflow-provider-linkmsg[sqlite]" (or apache-airflow-providers-sqlite)'),
        ("mssql", 'pip install "apache-airflow-providers-microsoft-mssql"'),
        ("some_db", 'pip install "apache-airflow-providers-some-db"'),
    ],
)
def test_the_hint_names_our_extra_when_there_is_one(conn_type, hint, monkeypatch):
    from airflow.providers.common.compat.sdk import Connection

    import airflow_provider_linkmsg.io.extras as extras

    registered = {"sqlite", "postgres"} - {conn_type}  # as if this type's provider were not installed
    monkeypatch.setattr(extras, "_registered_hook_types", lambda: registered)
    with pytest.raises(LinkMsgValidationError, match="whose Airflow provider is not installed") as err:
        require_sql_provider(Connection(conn_id="wh", conn_type=conn_type))
    assert hint in str(err.value)
    assert err.value.field == "conn_id"


def test_installed_providers_pass_the_check():
    from airflow.providers.common.compat.sdk import Connection

    for conn_type in ("sqlite", "postgres"):  # both come with the dev extra
        require_sql_provider(Connection(conn_id="wh", conn_type=conn_type))


def test_sql_export_announces_the_asset_of_each_table_written_and_no_other(tmp_path, monkeypatch):
    from airflow.providers.common.compat.sdk import AssetAlias

    from tests.compat import alias_events, outlet_event_accessors

    monkeypatch.setenv(
        "AIRFLOW_CONN_WH", json.dumps({"conn_type": "sqlite", "host": str(tmp_path / "wh.db")})
    )
    manifest = _staged(tmp_path / "staging", n=3)
    operator = LinkMsgExportToSqlOperator(task_id="export", manifests=manifest.summary(), conn_id="wh")
    assert operator.outlets == [AssetAlias("linkmsg-sql:wh")]
    events = outlet_event_accessors()
    operator.execute({"outlet_events": events})
    announced = [uri for uri, _ in alias_events(events[operator.outlets[0]])]
    assert announced == [sql_table_uri("wh", "linkmsg_messages")] == ["x-linkmsg-sql://wh/linkmsg_messages"]


def _example_dags():
    from tests.compat import dag_bag

    bag = dag_bag(dag_folder=str(EXAMPLES))
    assert bag.import_errors == {}
    return bag.dags


def _leaves(condition):
    """The assets of a schedule's condition (``AssetAll`` / ``AssetAny`` hold theirs in ``objects``)."""
    for item in getattr(condition, "objects", None) or [condition]:
        yield from _leaves(item) if hasattr(item, "objects") else [item]


def test_the_examples_announce_each_table_under_one_uri():
    """Every SQL export of the examples, and the DAG scheduled on the inbox table, agree on its URI."""
    from airflow.providers.common.compat.sdk import AssetAlias

    from tests.compat import schedule_condition

    uris_by_table: dict[tuple[str, str], set[str]] = defaultdict(set)
    scheduled_on: set[str] = set()
    dags = _example_dags()
    for dag in dags.values():
        for task in dag.tasks:
            if isinstance(task, LinkMsgExportToSqlOperator):
                tables = {t: sql_table_uri(task.conn_id, t) for t in task.tables.values()}
                for outlet in task.outlets:
                    if isinstance(outlet, AssetAlias):  # the default: announces sql_table_uri at run time
                        assert outlet.name == sql_asset_alias(task.conn_id)
                        for table, uri in tables.items():
                            uris_by_table[(task.conn_id, table)].add(uri)
                        continue
                    assert outlet.uri in tables.values(), f"{dag.dag_id}.{task.task_id}: {outlet.uri}"
                    table = next(t for t, uri in tables.items() if uri == outlet.uri)
                    uris_by_table[(task.conn_id, table)].add(outlet.uri)
        condition = schedule_condition(dag)
        if condition is not None:
            # the SQL tables only: other assets (the webhook plugin's completion events) are not tables
            scheduled_on |= {a.uri for a in _leaves(condition) if a.uri.startswith("x-linkmsg-sql://")}
    assert uris_by_table, "the examples export to SQL"
    assert all(len(uris) == 1 for uris in uris_by_table.values()), dict(uris_by_table)
    assert scheduled_on, "an example DAG is scheduled on a SQL table"
    announced = set().union(*uris_by_table.values())
    assert scheduled_on <= announced, f"scheduled on {scheduled_on - announced}, which no export announces"


def test_no_other_asset_uri_scheme_is_built_in_the_package_or_examples():
    """The retired ``linkmsg://`` scheme must not come back for a table the SQL export announces."""
    root = Path(__file__).resolve().parents[2]
    offenders = [
        f"{path.relative_to(root)}:{n}"
        for folder in ("airflow_provider_linkmsg", "example_dags")
        for path in (root / folder).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "linkmsg://" in line and "x-linkmsg-sql://" not in line
    ]
    assert offenders == []
