"""
The Koneksi example DAG under a REAL Airflow 2 scheduler and triggerer (not ``dag.test()``): the deferrable
sensor hands its wait to the ``airflow triggerer`` process, the trigger's event resumes it, and every task of
the run succeeds against the sandbox with exactly the sandbox's messages in the warehouse.

Both components run as subprocesses of this test, on its own ``AIRFLOW_HOME`` (SQLite, SequentialExecutor,
no log servers, nothing listening but the sandbox on 127.0.0.1) and are stopped at the end, bounded in time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.compat import AIRFLOW_V_3_0_PLUS

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "example_dags" / "example_koneksi_outreach.py"
DAG_ID = "linkmsg_koneksi_outreach"
AIRFLOW = Path(sys.executable).with_name("airflow")
RUN_TIMEOUT_S = 480

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        AIRFLOW_V_3_0_PLUS,
        reason="checks Airflow 2's triggerer and scheduler (SequentialExecutor on SQLite); on Airflow 3 a real "
        "run needs the API server and DAG processor too, which tests/e2e/test_webhook_plugin.py starts",
    ),
]


def _env(home: Path, sandbox, tmp_path: Path) -> dict[str, str]:
    """The components' environment: none of the test harness's Airflow settings, only this test's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(sandbox.env())
    env.update(
        {
            "PATH": f"{AIRFLOW.parent}{os.pathsep}{env.get('PATH', '')}",  # `airflow tasks run` is looked up
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "SequentialExecutor",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
            "AIRFLOW__SCHEDULER__DAG_DIR_LIST_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "1",
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
            # Koneksi requires a completion_notification_url; this sandbox has no webhook secret, so it
            # sends no webhook there (loopback either way)
            "AIRFLOW__LINKMSG__WEBHOOK_BASE_URL": sandbox.base_url,
            "AIRFLOW__LINKMSG__STAGING_PATH": str(tmp_path / "staging"),
            "AIRFLOW_VAR_LINKMSG_EXPORT_PATH": str(tmp_path / "export"),
            "AIRFLOW_CONN_LINKMSG_WAREHOUSE": json.dumps(
                {"conn_type": "sqlite", "host": str(tmp_path / "warehouse.db")}
            ),
        }
    )
    return env


def _airflow(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(AIRFLOW), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, f"airflow {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def _query(home: Path, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(home / "airflow.db", timeout=30) as db:
        return db.execute(sql, params).fetchall()


def _stop(processes: list[subprocess.Popen]) -> None:
    for proc in processes:
        if proc.poll() is None:
            proc.terminate()
    for proc in processes:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def test_the_koneksi_dag_defers_to_a_real_triggerer_and_succeeds(sandbox_factory, tmp_path):
    # a generation of 10 messages that takes about 40 s: the sensor's first look sees it unfinished
    sandbox = sandbox_factory(seed=0, sizes={"koneksi": {"seconds_per_message": 4.0}})
    home = tmp_path / "home"
    (home / "dags" / "data").mkdir(parents=True)
    shutil.copy(EXAMPLE, home / "dags" / EXAMPLE.name)
    shutil.copytree(EXAMPLE.parent / "data", home / "dags" / "data", dirs_exist_ok=True)
    env = _env(home, sandbox, tmp_path)

    _airflow(env, "db", "migrate")
    _airflow(env, "dags", "reserialize")
    logs = {name: open(tmp_path / f"{name}.log", "w") for name in ("scheduler", "triggerer")}  # noqa: SIM115
    processes = [
        subprocess.Popen(
            [str(AIRFLOW), name, "--skip-serve-logs"],
            env=env,
            stdout=logs[name],
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        for name in ("scheduler", "triggerer")
    ]
    try:
        _airflow(env, "dags", "unpause", DAG_ID)
        _airflow(env, "dags", "trigger", DAG_ID, "--run-id", "real_triggerer")
        deadline = time.monotonic() + RUN_TIMEOUT_S
        state = None
        while time.monotonic() < deadline:
            (state,) = _query(home, "SELECT state FROM dag_run WHERE run_id = 'real_triggerer'")[0]
            if state in ("success", "failed"):
                break
            for name, proc in zip(("scheduler", "triggerer"), processes, strict=True):
                assert proc.poll() is None, (
                    f"the {name} exited: {(tmp_path / f'{name}.log').read_text()[-3000:]}"
                )
            time.sleep(2)
    finally:
        _stop(processes)
        for handle in logs.values():
            handle.close()

    tasks = dict(_query(home, "SELECT task_id, state FROM task_instance WHERE run_id = 'real_triggerer'"))
    triggerer_log = (tmp_path / "triggerer.log").read_text()
    assert state == "success", f"the run ended {state} ({tasks}); triggerer log:\n{triggerer_log[-3000:]}"
    assert set(tasks.values()) == {"success"} and len(tasks) == 5, tasks

    # the wait really went through the triggerer process: its job row, the trigger it ran, the resumed task
    assert _query(home, "SELECT count(*) FROM job WHERE job_type = 'TriggererJob'")[0][0] >= 1
    trigger = f"trigger {DAG_ID}/real_triggerer/wait_for_generation/-1/1 (ID "
    assert f"{trigger}" in triggerer_log and ") completed" in triggerer_log, triggerer_log[-3000:]
    assert re.search(re.escape(trigger) + r"\d+\) starting", triggerer_log), triggerer_log[-3000:]
    (wait_log,) = (home / "logs").rglob("task_id=wait_for_generation/attempt=1.log")
    text = wait_log.read_text()
    assert "deferring to the triggerer" in text and "complete:" in text, text[-3000:]

    # what the warehouse holds is the sandbox's ground truth: every generated message, once
    (request_id,) = sandbox.truth("koneksi")["requests"]
    truth = {
        f"koneksi:{request_id}:{m['lead_id']}:{m['message_type']}"
        for m in sandbox.truth("koneksi")["requests"][request_id]["messages"]
    }
    with sqlite3.connect(tmp_path / "warehouse.db") as warehouse:
        keys = [row[0] for row in warehouse.execute("SELECT record_key FROM linkmsg_generated_messages")]
    assert len(truth) == 10
    assert sorted(keys) == sorted(truth)
