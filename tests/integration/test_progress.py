"""Progress lines of long work: a long retrieve logs what is done, what is left, calls and credits."""

from __future__ import annotations

import itertools
import re

import pytest

from airflow_provider_linkmsg.engine.progress import MAX_INTERVAL, MIN_INTERVAL, Progress, check_interval
from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
from tests.compat import task_log_lines

READ_ROUTES = {"connectsafely": "GET /conversations/{urn}/messages", "linkup": "POST /messages"}
LINE = re.compile(
    r"(?P<label>\S+ \S+): (?P<phase>listing|reading): (?P<done>\d+)(?:/(?P<total>\d+))? conversation\(s\) "
    r"(?:listed|read) done(?:, (?P<left>\d+) left)?, (?P<records>\d+) record\(s\); (?P<calls>\d+) call\(s\), "
    r"(?P<credits>[\d.]+) credit\(s\) so far \((?P<elapsed>\d+) s\)"
)


@pytest.mark.parametrize("vendor", ["connectsafely", "linkup"])
def test_a_long_retrieve_logs_progress_lines_at_the_promised_cadence(
    inbox_sandbox, tmp_path, inbox_context, capsys, caplog, vendor
):
    sandbox = inbox_sandbox(vendor, conversations=40, messages=3)
    sandbox.set_faults([{"vendor": vendor, "route": READ_ROUTES[vendor], "latency_ms": 150}])
    operator_class = {
        "connectsafely": ConnectSafelyRetrieveMessagesOperator,
        "linkup": LinkupRetrieveMessagesOperator,
    }
    extra = {"max_credits": 1000} if vendor == "linkup" else {}
    operator = operator_class[vendor](
        task_id="retrieve", staging_path=str(tmp_path), max_workers=2, progress_seconds=1, **extra
    )
    result = operator.execute(inbox_context())
    lines = task_log_lines(capsys, caplog)
    progress = [(t, LINE.search(m)) for t, m in lines if LINE.search(m)]
    assert len(progress) >= 2, [m for _, m in lines]
    account = result["account_id"]
    reading = [m for _, m in progress if m["phase"] == "reading"]
    assert reading, [m.string for _, m in progress]
    for match in reading:  # what is done, what is left, and the calls and credits so far
        assert match["label"] == f"{vendor} {account}"
        assert int(match["total"]) == result["conversations_changed"] == 40
        assert int(match["done"]) + int(match["left"]) == 40
        assert int(match["calls"]) >= 1 + int(match["done"])  # the listing and a read per conversation done
        assert 0 <= int(match["records"]) <= result["records"]
        if vendor == "linkup":
            assert float(match["credits"]) > 0
    dones = [int(m["done"]) for m in reading]
    assert dones == sorted(dones) and dones[0] < 40  # the lines come while the work goes on
    calls = [int(m["calls"]) for _, m in progress]
    assert calls == sorted(calls) and calls[-1] <= result["api_calls"]
    # spacing: never closer than the interval (a daemon timer), never much later (loose bound: a busy host)
    times = [t for t, _ in progress]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert all(gap >= 0.95 for gap in gaps), gaps
    assert all(gap <= 1 + 5 for gap in gaps), gaps


def test_a_run_shorter_than_the_interval_logs_no_progress_line(
    inbox_sandbox, tmp_path, inbox_context, capsys, caplog
):
    inbox_sandbox("connectsafely", conversations=3, messages=2)
    operator = ConnectSafelyRetrieveMessagesOperator(task_id="retrieve", staging_path=str(tmp_path))
    operator.execute(inbox_context())
    lines = [m for _, m in task_log_lines(capsys, caplog)]
    assert not [m for m in lines if LINE.search(m)]
    assert any(": staged " in m for m in lines)


@pytest.mark.parametrize("value", [0, 0.5, 31, "10", None, True])
def test_progress_seconds_out_of_bounds_is_refused_before_any_call(tmp_path, inbox_context, value):
    operator = ConnectSafelyRetrieveMessagesOperator(
        task_id="retrieve", staging_path=str(tmp_path), account_id="a" * 24, progress_seconds=value
    )
    with pytest.raises(LinkMsgValidationError, match="progress_seconds") as raised:
        operator.execute(inbox_context())
    assert raised.value.field == "progress_seconds"


def test_the_progress_line_says_done_left_records_calls_and_credits():
    clock = iter([100.0, 100.0, 112.4]).__next__
    usage = {"api_calls": 7, "credits": 2.5}
    progress = Progress(None, "linkup acc_1", usage=lambda: usage, interval=5, clock=clock)
    progress.__enter__()
    try:
        progress.start_phase("reading", unit="conversation(s) read", total=10)
        progress.advance(3, records=12)
        assert progress.line() == (
            "reading: 3/10 conversation(s) read done, 7 left, 12 record(s); 7 call(s), 2.5 credit(s) so far (12 s)"
        )
    finally:
        progress.__exit__(None, None, None)
    assert check_interval(MIN_INTERVAL) == MIN_INTERVAL and check_interval(MAX_INTERVAL) == MAX_INTERVAL
