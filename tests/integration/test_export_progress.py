"""
Progress lines of long exports: files written (or batches committed) done and left, and rows written of the
staged total, at the promised cadence, from the export operators' task log.
"""

from __future__ import annotations

import inspect
import itertools
import re
import uuid

import pytest

from airflow_provider_linkmsg.engine import progress as progress_module
from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.io.sql import create_table_sql
from airflow_provider_linkmsg.operators.export import LinkMsgExportToFilesOperator, LinkMsgExportToSqlOperator
from tests.compat import task_log_lines
from tests.integration.test_export import db_hook, messages, run_operator, stage

LINE = re.compile(
    r"(?P<label>export to \S+): exporting: (?P<done>\d+)/(?P<total>\d+) "
    r"(?P<unit>file\(s\) written|batch\(es\) committed) done, (?P<left>\d+) left, "
    r"(?P<rows>\d+)/(?P<rows_total>\d+) record\(s\) so far \((?P<elapsed>\d+) s\)"
)


def progress_lines(capsys, caplog) -> list[tuple[float, re.Match]]:
    return [(t, LINE.search(m)) for t, m in task_log_lines(capsys, caplog) if LINE.search(m)]


def check_lines(lines: list[tuple[float, re.Match]], *, total: int, rows_total: int, interval: float) -> None:
    """What is done and left adds up, grows, never passes the totals; lines come at the interval."""
    assert len(lines) >= 2, "a long export logs progress lines while it works"
    for _, match in lines:
        assert int(match["total"]) == total and int(match["rows_total"]) == rows_total
        assert int(match["done"]) + int(match["left"]) == total
        assert int(match["rows"]) <= rows_total
    dones = [int(m["done"]) for _, m in lines]
    rows = [int(m["rows"]) for _, m in lines]
    assert dones == sorted(dones) and rows == sorted(rows)
    assert dones[0] < total and rows[0] < rows_total  # the lines come while the work goes on
    assert dones[-1] > dones[0] and rows[-1] > rows[0], "the lines follow the work as it moves"
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(lines)]
    assert all(gap >= interval * 0.95 for gap in gaps), gaps
    assert all(gap <= interval + 5 for gap in gaps), gaps  # loose: a busy host


@pytest.mark.postgres
def test_a_long_sql_export_logs_batches_and_rows_at_the_interval(tmp_path, postgres_conn_id, capsys, caplog):
    """A warehouse that takes 2 ms per row (a trigger sleeps): 1500 rows take at least 3 s."""
    table = f"linkmsg_progress_{uuid.uuid4().hex[:8]}"
    hook = db_hook(postgres_conn_id)
    hook.run(
        [
            *create_table_sql(table, "message", "postgresql"),
            "CREATE OR REPLACE FUNCTION linkmsg_slow_row() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(0.002); RETURN NULL; END $$",
            f"CREATE TRIGGER slow AFTER INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION linkmsg_slow_row()",
        ],
        autocommit=True,
    )
    manifest = stage(tmp_path / "staging", messages(1500, "linkup"), run_id="r1", max_records_per_file=500)
    operator = LinkMsgExportToSqlOperator(
        task_id="export",
        manifests=manifest.summary(),
        conn_id=postgres_conn_id,
        messages_table=table,
        batch_size=100,
        progress_seconds=1,
    )
    result, _ = run_operator(operator)
    assert result["records"] == 1500
    lines = progress_lines(capsys, caplog)
    check_lines(lines, total=15, rows_total=1500, interval=1)
    for _, match in lines:
        assert match["label"] == f"export to {postgres_conn_id}"
        assert match["unit"] == "batch(es) committed"
        assert int(match["done"]) >= 1  # a batch takes 0.2 s, the first line comes after 1 s
        assert int(match["rows"]) == 100 * int(match["done"])  # rows are counted as their batch commits


def test_a_long_file_export_logs_files_and_rows_at_the_interval(tmp_path, monkeypatch, capsys, caplog):
    """A short interval (the bound lowered for the test) over a CSV export of 30 part files."""
    monkeypatch.setattr(progress_module, "MIN_INTERVAL", 0.05)
    manifest = stage(tmp_path / "staging", messages(30_000, "linkup"), run_id="r1", max_records_per_file=1000)
    destination = tmp_path / "out"
    operator = LinkMsgExportToFilesOperator(
        task_id="export",
        manifests=manifest.summary(),
        destination=str(destination),
        file_format="csv",
        progress_seconds=0.05,
    )
    result, _ = run_operator(operator)
    assert result["records"] == 30_000 and len(result["files"]) == 30
    lines = progress_lines(capsys, caplog)
    check_lines(lines, total=30, rows_total=30_000, interval=0.05)
    for _, match in lines:
        assert match["label"] == f"export to {destination}" and match["unit"] == "file(s) written"
        # rows are counted as they are written (every 1000 and at each file's end): a file's worth per file
        assert int(match["rows"]) >= 1000 * int(match["done"])


@pytest.mark.parametrize("value", [0, 0.5, 31, "10", True])
def test_progress_seconds_out_of_bounds_is_refused_before_anything_is_written(tmp_path, value):
    manifest = stage(tmp_path / "staging", messages(3, "linkup"), run_id="r1")
    destination = tmp_path / "out"
    operator = LinkMsgExportToFilesOperator(
        task_id="export", manifests=manifest.summary(), destination=str(destination), progress_seconds=value
    )
    with pytest.raises(LinkMsgValidationError, match="progress_seconds") as raised:
        run_operator(operator)
    assert raised.value.field == "progress_seconds"
    assert not destination.exists()


def test_an_export_shorter_than_the_interval_logs_no_progress_line(tmp_path, capsys, caplog):
    manifest = stage(tmp_path / "staging", messages(5, "linkup"), run_id="r1")
    operator = LinkMsgExportToFilesOperator(
        task_id="export", manifests=manifest.summary(), destination=str(tmp_path / "out")
    )
    run_operator(operator)
    lines = [m for _, m in task_log_lines(capsys, caplog)]
    assert not [m for m in lines if LINE.search(m)]
    assert any("Exported 5 records" in m for m in lines)


def test_the_default_interval_written_as_a_literal_is_the_helpers():
    """The operators write the default out (DAG files do not import the engine): it must stay the same."""
    for operator_class in (LinkMsgExportToFilesOperator, LinkMsgExportToSqlOperator):
        default = inspect.signature(operator_class.__init__).parameters["progress_seconds"].default
        assert default == progress_module.DEFAULT_INTERVAL, operator_class
