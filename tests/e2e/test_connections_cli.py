"""`airflow connections test` for each connection type against the sandbox: right key, wrong key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.compat import AIRFLOW_V_3_1_PLUS

AIRFLOW = Path(sys.executable).with_name("airflow")
VENDORS = ["koneksi", "connectsafely", "linkedapi", "linkup"]


def connections_test(env: dict[str, str], conn_id: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AIRFLOW), "connections", "test", conn_id], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def cli_env(sandbox, tmp_path):
    env = dict(os.environ, AIRFLOW_HOME=str(tmp_path), AIRFLOW__CORE__TEST_CONNECTION="Enabled")
    env.update(sandbox.env())
    return env


@pytest.mark.parametrize("vendor", VENDORS)
def test_connections_test_succeeds_with_the_right_key_and_fails_clearly_with_a_wrong_one(cli_env, vendor):
    conn_id = f"{vendor}_default"
    ok = connections_test(cli_env, conn_id)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Connection success!" in ok.stdout

    var = f"AIRFLOW_CONN_{vendor.upper()}_DEFAULT"
    conn = json.loads(cli_env[var])
    conn["password"] = "definitely-wrong-key-42"
    bad = connections_test({**cli_env, var: json.dumps(conn)}, conn_id)
    output = bad.stdout + bad.stderr
    if AIRFLOW_V_3_1_PLUS:  # 2.x and 3.0 print the failure and still exit 0
        assert bad.returncode != 0
    assert "Connection failed!" in output
    assert f"Check the API key in Airflow connection '{conn_id}'" in output
    assert "definitely-wrong-key-42" not in output
