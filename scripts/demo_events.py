"""
The demo's event-driven run: a Koneksi completion webhook, through the provider's plugin in a real
``airflow api-server``, starts ``linkmsg_koneksi_webhook_export`` (no sensor, no trigger).

1. serializes the example DAGs and unpauses the webhook-scheduled export DAG;
2. starts ``airflow api-server`` on a free loopback port (the plugin loads through its entry point);
3. requests a generation whose ``completion_notification_url`` the request operator takes from
   ``[linkmsg] webhook_base_url``; the sandbox completes it and POSTs its signed webhook to the plugin,
   which records an asset event;
4. runs ``airflow scheduler`` (LocalExecutor, tasks talk to the API server) until the asset-triggered run
   has finished, then stops both.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

DAG_ID = "linkmsg_koneksi_webhook_export"
TIMEOUT = 300.0
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(airflow: Path, env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(airflow), *args], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait(what: str, check, log: Path | None = None) -> Any:
    deadline = time.monotonic() + TIMEOUT
    while not (value := check()):
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log else ""
            raise SystemExit(f"demo: timed out waiting for {what}; log {log}:\n{tail}")
        time.sleep(0.5)
    return value


def _run_state(db: Path) -> str | None:
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT state FROM dag_run WHERE dag_id = ? AND run_type = 'asset_triggered'", (DAG_ID,)
        ).fetchone()
    return row[0] if row else None


def webhook_run(airflow_cli, airflow: Path, env: dict[str, str], sandbox, demo: Path, leads: str) -> float:
    """
    The event-driven run; returns its seconds. ``airflow_cli(env, *args, log=...)`` runs a CLI command.

    :param leads: the example leads file; the leads get new ids, so this is a generation of its own.
    """
    started = time.monotonic()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **env,
        "AIRFLOW__LINKMSG__WEBHOOK_BASE_URL": url,
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{url}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(48),
    }
    logs = demo / "logs"
    airflow_cli(env, "dags", "reserialize", log=logs / "events-reserialize.log")
    airflow_cli(env, "dags", "unpause", DAG_ID, log=logs / "events-unpause.log")
    api = _start(
        airflow, env, logs / "events-api-server.log", "api-server", "--host", "127.0.0.1", "--port", str(port)
    )
    scheduler = None
    try:

        def healthy() -> bool:
            try:
                with _DIRECT.open(f"{url}/api/v2/monitor/health", timeout=2) as response:
                    return response.status == 200
            except OSError:
                return False

        _wait("the API server", healthy, logs / "events-api-server.log")
        os.environ.update(env)  # this process's hook and operator use the demo's connections and config
        from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
        from airflow_provider_linkmsg.operators.koneksi import KoneksiRequestMessageGenerationOperator

        lead_data = [
            {**lead, "external_prospect_id": lead["external_prospect_id"] + "_wh"}
            for lead in json.loads(Path(leads).read_text())
        ]
        campaign = {
            "automation_tool_customer_id": "customer_12345",
            "automation_tool_campaign_id": "campaign_webhook_demo",
            "automation_tool_campaign_name": "Webhook demo",
            "proposition_company_name": "Acme Analytics",
            "proposition_company_url": "https://acme-analytics.example.com",
            "message_sequence": [{"step": 1, "messageType": "connection_request"}],
        }
        operator = KoneksiRequestMessageGenerationOperator(
            task_id="request", campaign=campaign, leads=lead_data
        )
        payload = operator.build_payload()  # completion_notification_url from [linkmsg] webhook_base_url
        request_id = KoneksiHook().request_message_generation(payload)
        _wait(
            "the sandbox's completion webhook",
            lambda: sandbox.stats().get("webhooks", {}).get("koneksi delivered"),
            logs / "events-api-server.log",
        )
        scheduler = _start(airflow, env, logs / "events-scheduler.log", "scheduler")
        db = demo / "airflow" / "airflow.db"
        state = _wait(
            f"the asset-triggered run of {DAG_ID}",
            lambda: (found := _run_state(db)) in ("success", "failed") and found,
            logs / "events-scheduler.log",
        )
        if state != "success":
            raise SystemExit(f"demo: the asset-triggered run of {DAG_ID} ended {state}; logs in {logs}")
    finally:
        if scheduler is not None:
            _stop(scheduler)
        _stop(api)
    seconds = time.monotonic() - started
    print(
        f"  {DAG_ID:<34} {'webhook':<12} ok  {seconds:5.1f} s   generation {request_id}: completion webhook "
        f"-> asset event -> run   logs: {logs.name}/events-*.log"
    )
    return seconds
