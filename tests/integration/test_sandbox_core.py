"""The sandbox core: admin API, deterministic fault injection, counters, rate limits and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

KEY = {"x-api-key": "lk-sandbox-0-key"}


def outcomes(base_url: str, n: int) -> list[str]:
    """What n plain requests meet: a status code or 'reset'/'truncated'."""
    seen = []
    for _ in range(n):
        try:
            response = requests.get(f"{base_url}/linkup/v2/accounts", headers=KEY, timeout=5)
            response.json()
            seen.append(str(response.status_code))
        except requests.exceptions.ConnectionError:
            seen.append("reset")
        except (requests.exceptions.ChunkedEncodingError, ValueError):
            seen.append("truncated")
    return seen


RULES = {"rules": [{"vendor": "linkup", "p_429": 0.2, "p_5xx": 0.2, "p_reset": 0.1, "p_truncate": 0.1}]}


def test_faults_are_deterministic_by_seed_and_counted(sandbox_factory):
    runs = []
    for fault_seed in (11, 11, 12):
        sb = sandbox_factory(seed=0)
        assert requests.put(f"{sb.base_url}/_sandbox/faults", json={**RULES, "seed": fault_seed}).ok
        runs.append(outcomes(sb.base_url, 60))
        stats = requests.get(f"{sb.base_url}/_sandbox/stats").json()
        assert stats["calls"]["linkup GET /accounts"] == 60
        assert stats["faults"].get("linkup 429", 0) == runs[-1].count("429")
        assert stats["faults"].get("linkup 5xx", 0) == runs[-1].count("503")
        assert stats["faults"].get("linkup reset", 0) == runs[-1].count("reset")
        assert stats["faults"].get("linkup truncate", 0) == runs[-1].count("truncated")
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert {"200", "429", "503", "reset", "truncated"} <= set(runs[0])


def test_fault_rules_match_routes_and_stop_after_times(sandbox):
    sandbox.set_faults(
        [{"vendor": "linkup", "route": "GET /accounts", "p_5xx": 1, "status_5xx": 502, "times": 2}]
    )
    assert outcomes(sandbox.base_url, 4) == ["502", "502", "200", "200"]
    rules = requests.get(f"{sandbox.base_url}/_sandbox/faults").json()["rules"]
    assert rules[0]["served"] == 2
    sandbox.set_faults([{"vendor": "koneksi", "p_5xx": 1}])
    assert outcomes(sandbox.base_url, 2) == ["200", "200"]


def test_added_latency(sandbox):
    sandbox.set_faults([{"vendor": "linkup", "latency_ms": 300}])
    started = time.monotonic()
    assert outcomes(sandbox.base_url, 1) == ["200"]
    assert time.monotonic() - started >= 0.3


def test_rate_limits_answer_429_with_retry_after(sandbox):
    assert requests.put(f"{sandbox.base_url}/_sandbox/config", json={"rate_limits": {"linkup": [3, 60]}}).ok
    seen = outcomes(sandbox.base_url, 5)
    assert seen == ["200", "200", "200", "429", "429"]
    response = requests.get(f"{sandbox.base_url}/linkup/v2/accounts", headers=KEY)
    assert response.status_code == 429 and 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.json()["error"]["code"] == "RATE_LIMITED"
    assert sandbox.stats()["rate_limited"]["linkup"] == 3
    # limits are per key: another key is not held back by the first one's window
    other = requests.get(f"{sandbox.base_url}/linkup/v2/accounts", headers={"x-api-key": "other"})
    assert other.status_code == 403
    requests.put(f"{sandbox.base_url}/_sandbox/config", json={"rate_limits": {"linkup": None}})
    assert outcomes(sandbox.base_url, 1) == ["200"]


def test_admin_api(sandbox):
    base = sandbox.base_url
    for vendor in ("koneksi", "connectsafely", "linkedapi", "linkup"):
        assert requests.get(f"{base}/_sandbox/truth/{vendor}").status_code == 200
    assert requests.get(f"{base}/_sandbox/truth/nobody").status_code == 404
    assert requests.post(f"{base}/_sandbox/advance", json={"seconds": 60}).ok
    assert sandbox.state.now() == sandbox.state.now() and sandbox.state.offset == 60
    outcomes(base, 2)
    assert requests.get(f"{base}/_sandbox/stats").json()["calls"]["linkup GET /accounts"] == 2
    assert requests.post(f"{base}/_sandbox/stats/reset").ok
    assert requests.get(f"{base}/_sandbox/stats").json() == {}
    assert requests.put(f"{base}/_sandbox/faults", data=b"{not json").status_code == 400
    assert requests.get(f"{base}/nowhere").status_code == 404
    connections = requests.get(f"{base}/_sandbox/connections").json()
    assert set(connections) == {
        "koneksi_default",
        "connectsafely_default",
        "linkedapi_default",
        "linkup_default",
    }


def test_cli_prints_base_url_and_connections_then_serves():
    script = Path(sys.executable).with_name("linkmsg-sandbox")
    proc = subprocess.Popen([str(script), "--port", "0", "--seed", "5"], stdout=subprocess.PIPE, text=True)
    try:
        first = json.loads(proc.stdout.readline())
        assert first["seed"] == 5 and first["base_url"].startswith("http://127.0.0.1:")
        conns = first["connections"]
        assert set(conns) == {
            f"AIRFLOW_CONN_{v}_DEFAULT" for v in ("KONEKSI", "CONNECTSAFELY", "LINKEDAPI", "LINKUP")
        }
        linkup = json.loads(conns["AIRFLOW_CONN_LINKUP_DEFAULT"])
        assert linkup["extra"]["base_url"] == first["base_url"] + "/linkup/v2"
        response = requests.get(
            f"{linkup['extra']['base_url']}/accounts", headers={"x-api-key": linkup["password"]}
        )
        assert response.status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_context_manager_frees_the_port():
    from airflow_provider_linkmsg.sandbox import Sandbox

    with Sandbox(port=0) as sb:
        url = sb.base_url
        assert requests.get(f"{url}/_sandbox/stats").ok
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"{url}/_sandbox/stats", timeout=2)
