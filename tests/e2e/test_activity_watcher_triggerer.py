"""
An inbox activity watcher in a real ``airflow triggerer`` (Airflow 3.3's own TriggerRunner, re-creating the
trigger from its serialized kwargs): new activity in the sandbox becomes one asset event and one queued,
asset-triggered run of the DAG scheduled on the asset; a restarted triggerer fires nothing again.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.compat import requires_airflow
from tests.fixtures.browser import airflow_env

pytestmark = [
    requires_airflow("3.0.0", "asset watchers (AssetWatcher, BaseEventTrigger) exist from Airflow 3.0"),
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

AIRFLOW = Path(sys.executable).with_name("airflow")
URI = "x-linkmsg-connectsafely://connectsafely_default/watched/activity"


class Triggerer:
    """``airflow triggerer`` in its own process group, its output in a file."""

    def __init__(self, log: Path) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(AIRFLOW), "triggerer", "--skip-serve-logs"],  # no log server on its fixed port
                env=airflow_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)


def wait_for(predicate, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def looks(sandbox) -> float:
    return sum(v for k, v in sandbox.stats().get("calls", {}).items() if k.startswith("connectsafely"))


def test_a_real_triggerer_fires_once_per_activity_and_not_after_a_restart(
    airflow_db, sandbox_factory, tmp_path
):
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG, Asset, AssetWatcher

    from airflow_provider_linkmsg.triggers.watchers.connectsafely import ConnectSafelyInboxActivityTrigger
    from tests.e2e.test_webhook_plugin import deploy, events, schedule_runs

    sandbox = sandbox_factory(seed=4, sizes={"connectsafely": {"accounts": 1, "conversations": 15}})
    account = sandbox.truth("connectsafely")["accounts"][0]["id"]
    trigger = ConnectSafelyInboxActivityTrigger(
        account_id=account, poll_interval=1.0, fire_on_start=False, staging_path=str(tmp_path / "state")
    )
    activity = Asset(
        name="linkmsg-watch-e2e", uri=URI, watchers=[AssetWatcher(name="inbox", trigger=trigger)]
    )
    with DAG("linkmsg_watch_e2e", schedule=[activity], start_date=datetime(2026, 1, 1)) as dag:
        EmptyOperator(task_id="retrieve")
    dag_id = deploy(dag)
    deploy(dag)  # Airflow registers an asset's watchers only for an active, unpaused DAG: sync it again

    triggerer = Triggerer(tmp_path / "triggerer.log")
    try:
        wait_for(lambda: looks(sandbox) >= 3, f"the watcher's looks:\n{triggerer.tail()}")
        assert events(URI) == []  # unchanged inbox (fire_on_start=False): nothing

        changed = sandbox.advance(seconds=60, conversations=1, messages=1)["connectsafely"]["changed"]
        wait_for(lambda: events(URI), f"the asset event:\n{triggerer.tail()}")
        seen = looks(sandbox)
        wait_for(lambda: looks(sandbox) >= seen + 3, "more looks")
        recorded = events(URI)
        assert len(recorded) == 1, recorded
        assert recorded[0]["payload"]["conversations"] == changed
        assert recorded[0]["payload"]["account"] == account

        runs = schedule_runs(dag_id)
        assert [(r["state"], r["run_type"]) for r in runs] == [("queued", "asset_triggered")]
    finally:
        triggerer.stop()

    again = Triggerer(tmp_path / "triggerer-2.log")  # a restart: the trigger re-created from its kwargs
    try:
        seen = looks(sandbox)
        wait_for(lambda: looks(sandbox) >= seen + 3, f"looks after the restart:\n{again.tail()}")
        assert len(events(URI)) == 1, "a restarted triggerer fired again for the same activity"
        assert len(schedule_runs(dag_id)) == 1
    finally:
        again.stop()
