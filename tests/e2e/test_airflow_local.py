"""
`make airflow` (scripts/airflow_local.py), started and stopped twice as a user would: Ctrl-C leaves no process
behind and prints no traceback; a connection added in between, the password and the sandbox connections
are kept in the metadata database, visible through the REST API the UI uses.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.compat import AIRFLOW_V_3_3_PLUS, requires_airflow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "airflow_local.py"
AIRFLOW = Path(sys.executable).with_name("airflow")
START_TIMEOUT_S = 300
STOP_TIMEOUT_S = 60

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    requires_airflow(
        "3.0",
        "`make airflow` starts Airflow 3's components (api-server, dag-processor) and its simple auth manager",
    ),
]


def _clean_env() -> dict[str, str]:
    """The user's shell: none of the test harness's Airflow settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Run:
    """One `make airflow`: the script's process, its output file and what it started."""

    def __init__(self, state: Path, log: Path, port: int | None) -> None:
        self.log = log
        args = [sys.executable, str(SCRIPT), "--state", str(state)]
        if port:
            args += ["--port", str(port)]
        with open(log, "w") as out:
            self.proc = subprocess.Popen(
                args, env=_clean_env(), stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
            )
        self.port = self._wait_until_up()
        self.tree = self._process_tree()

    def output(self) -> str:
        return self.log.read_text()

    def _wait_until_up(self) -> int:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            match = re.search(r"Airflow is up: http://127\.0\.0\.1:(\d+)", self.output())
            if match:
                return int(match.group(1))
            if self.proc.poll() is not None:
                pytest.fail(f"the script exited with {self.proc.returncode}:\n{self.output()}")
            time.sleep(1)
        self.stop()
        pytest.fail(f"Airflow was not up after {START_TIMEOUT_S} s:\n{self.output()}")

    def _process_tree(self) -> list[psutil.Process]:
        """Every process the script started, once the executor's workers are up (bounded wait)."""
        root = psutil.Process(self.proc.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            tree = root.children(recursive=True)
            if any("LocalExecutor" in " ".join(_cmdline(p)) for p in tree):
                return tree
            time.sleep(1)
        return root.children(recursive=True)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            return self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            for p in [*self.tree, psutil.Process(self.proc.pid)]:
                if p.is_running():
                    p.kill()
            pytest.fail(f"the script did not stop within {STOP_TIMEOUT_S} s of SIGINT")


def _cmdline(p: psutil.Process) -> list[str]:
    try:
        return p.cmdline()
    except psutil.Error:
        return []


def _left_behind(tree: list[psutil.Process]) -> list[str]:
    alive = []
    for p in tree:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:  # is_running checks the create time
                alive.append(f"{p.pid} {' '.join(_cmdline(p))}")
        except psutil.NoSuchProcess:
            pass
    return alive


def _token(port: int, password: str) -> str:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/auth/token",
        data=json.dumps({"username": "admin", "password": password}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.load(resp)["access_token"]


def _api(port: int, token: str, path: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as resp:
        return json.load(resp)


def _connections(port: int, password: str) -> dict[str, dict]:
    """The connections as the UI lists them (the REST API behind Admin > Connections)."""
    body = _api(port, _token(port, password), "/api/v2/connections?limit=100")
    return {c["connection_id"]: c for c in body["connections"]}


def _password(state: Path) -> str:
    path = state / "airflow" / "simple_auth_manager_passwords.json.generated"
    return json.loads(path.read_text())["admin"]


def test_make_airflow_twice_keeps_state_and_leaves_no_process(tmp_path):
    state = tmp_path / "state"
    chosen = _free_port()

    first = Run(state, tmp_path / "run1.log", port=chosen)
    try:
        assert first.port == chosen, "PORT= / --port is honoured"
        assert len(first.tree) >= 4, [" ".join(_cmdline(p)) for p in first.tree]
        workers = [p for p in first.tree if "LocalExecutor" in " ".join(_cmdline(p))]
        # Airflow 3.3 forks every LocalExecutor worker at start; 3.0 forks one when a task is queued
        assert (1 if AIRFLOW_V_3_3_PLUS else 0) <= len(workers) <= 8, (
            f"{len(workers)} LocalExecutor workers on a {os.cpu_count()}-core machine"
        )
        password = _password(state)
        conns = _connections(first.port, password)
        assert {"koneksi_default", "connectsafely_default", "linkedapi_default", "linkup_default"} <= set(
            conns
        )
        assert conns["linkmsg_warehouse"]["conn_type"] == "sqlite"
        first_sandbox_url = json.loads(conns["linkup_default"]["extra"])["base_url"]
        # The UI is served, and its Test button is switched on.
        with urllib.request.urlopen(f"http://127.0.0.1:{first.port}/", timeout=30) as resp:
            assert resp.status == 200 and b"<html" in resp.read(2000).lower()
        ui_config = _api(first.port, _token(first.port, password), "/ui/config")
        assert ui_config["test_connection"] == "Enabled"
        # A user adds a connection (the CLI writes the same metadata database as the UI).
        env = {**_clean_env(), "AIRFLOW_HOME": str(state / "airflow")}
        mine = str(tmp_path / "mine.db")
        subprocess.run(
            [
                str(AIRFLOW),
                "connections",
                "add",
                "my_warehouse",
                "--conn-type",
                "sqlite",
                "--conn-host",
                mine,
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=180,
        )
        # The Test button's switch is on for the API server.
        test_result = subprocess.run(
            [str(AIRFLOW), "connections", "test", "linkup_default"],
            env={**env, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled"},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert "Connection success" in test_result.stdout, test_result.stdout + test_result.stderr
    finally:
        code = first.stop()
    assert code == 0, first.output()
    assert "Traceback" not in first.output(), first.output()
    assert _left_behind(first.tree) == []

    second = Run(state, tmp_path / "run2.log", port=None)
    try:
        assert second.port != 0
        assert _password(state) == password, "the admin password is kept"
        conns = _connections(second.port, password)
        assert conns["my_warehouse"]["host"] == mine, "the added connection is kept"
        sandbox_url = json.loads(conns["linkup_default"]["extra"])["base_url"]
        assert sandbox_url.startswith(re.search(r"sandbox at (\S+);", second.output()).group(1))
        assert first_sandbox_url.startswith("http://127.0.0.1:")
        assert "created" not in second.output(), "nothing is created again on a second start"
    finally:
        code = second.stop()
    assert code == 0, second.output()
    assert "Traceback" not in second.output(), second.output()
    assert _left_behind(second.tree) == []
