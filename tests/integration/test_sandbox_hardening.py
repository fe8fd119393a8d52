"""
The sandbox refuses bad admin input and malformed requests with a 400 and the reason, never a traceback,
a 500 for every later request, or a stuck handler thread; the console script stops within 2 s of SIGTERM.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

KEY = {"x-api-key": "lk-sandbox-0-key"}


def vendor_ok(base_url: str) -> bool:
    return requests.get(f"{base_url}/linkup/v2/accounts", headers=KEY, timeout=5).status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "reason"),
    [
        ("PUT", "/faults", {"rules": [{"p_429": "x"}]}, "p_429"),
        ("PUT", "/faults", {"rules": [{"p_5xx": 2}]}, "p_5xx"),
        ("PUT", "/faults", {"rules": [{"p_reset": float("nan")}]}, "p_reset"),
        ("PUT", "/faults", {"rules": [{"latency_ms": -5}]}, "latency_ms"),
        ("PUT", "/faults", {"rules": [{"status_5xx": 200}]}, "status_5xx"),
        ("PUT", "/faults", {"rules": [{"times": 1.5}]}, "times"),
        ("PUT", "/faults", {"rules": [{"kind": "explode"}]}, "kind"),
        ("PUT", "/faults", {"rules": [{"nonsense": 1}]}, "nonsense"),
        ("PUT", "/faults", {"rules": "all"}, "rules"),
        ("PUT", "/faults", {"rules": [], "seed": "x"}, "seed"),
        ("PUT", "/config", {"rate_limits": {"linkup": [0, 60]}}, "requests"),
        ("PUT", "/config", {"rate_limits": {"linkup": [5, 0]}}, "seconds"),
        ("PUT", "/config", {"rate_limits": {"linkup": [5]}}, "[requests, seconds]"),
        ("PUT", "/config", {"rate_limits": {"nobody": [5, 60]}}, "unknown vendor"),
        ("PUT", "/config", {"vendors": {"linkup": 3}}, "vendors.linkup"),
        ("PUT", "/config", {"speed": "fast"}, "unknown config keys"),
        ("POST", "/advance", {"seconds": 1e308}, "advance seconds"),
        ("POST", "/advance", {"seconds": -1}, "advance seconds"),
        ("POST", "/advance", {"seconds": "soon"}, "advance seconds"),
        ("POST", "/advance", [60], "object"),
        # every vendor part checked before anything changes (adversarial review, F12)
        ("PUT", "/config", {"vendors": {"linkup": {"pagination": "x"}}}, "vendors.linkup.pagination"),
        ("PUT", "/config", {"vendors": {"linkup": {"max_count": "lots"}}}, "vendors.linkup.max_count"),
        ("PUT", "/config", {"vendors": {"linkup": {"pagination": {"page_cap": "x"}}}}, "pagination.page_cap"),
        ("PUT", "/config", {"vendors": {"linkup": {"max_count": 5}, "koneksi": {"credits": "lots"}}}, "koneksi.credits"),
        ("PUT", "/config", {"vendors": {"linkup": {"speed": 5}}}, "not a sandbox setting"),
        ("PUT", "/config", None, "config must be an object"),
        ("PUT", "/faults", {"rules": [{"kind": "corrupt", "field": "data", "value": 1, "served": "x"}]}, "counters"),
        ("PUT", "/faults", {"rules": [{"kind": "corrupt", "field": "data", "value": 1, "seen": 3}]}, "counters"),
        ("PUT", "/faults", {"rules": [{"kind": "corrupt", "field": "data.conversations.\u00b2", "value": 1}]}, "ASCII"),
        ("PUT", "/faults", [], "faults take an object"),
        ("PUT", "/faults", None, "faults take an object"),
        ("POST", "/advance", {"seconds": 1, "linkup": "x"}, "advance.linkup"),
        ("POST", "/advance", {"seconds": 5, "connectsafely": {"conversations": 2}, "linkup": {"conversations": "x"}}, "advance.linkup.conversations"),
        ("POST", "/advance", {"seconds": 5, "conversations": 1.5}, "conversations"),
    ],
)  # fmt: skip
def test_bad_admin_input_is_a_400_with_the_reason_and_changes_nothing(sandbox, method, path, body, reason):
    before = requests.get(f"{sandbox.base_url}/_sandbox/faults").json()
    options = {name: json.dumps(app.options, sort_keys=True) for name, app in sandbox.apps.items()}
    truth = {name: sandbox.truth(name) for name in ("connectsafely", "linkup")}
    response = requests.request(method, f"{sandbox.base_url}/_sandbox{path}", data=json.dumps(body))
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]
    assert requests.get(f"{sandbox.base_url}/_sandbox/faults").json() == before
    assert {name: json.dumps(app.options, sort_keys=True) for name, app in sandbox.apps.items()} == options
    assert {name: sandbox.truth(name) for name in ("connectsafely", "linkup")} == truth
    assert sandbox.state.offset == 0 and not sandbox.state.rate_limits
    assert vendor_ok(sandbox.base_url), "a refused admin call broke the vendors"


def raw_exchange(base_url: str, data: bytes, timeout: float = 5) -> tuple[bytes, bool]:
    """Send raw bytes; return what came back and whether the server closed the connection."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as conn:
        conn.sendall(data)
        received = b""
        while True:
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                return received, False
            if not chunk:
                return received, True
            received += chunk


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /linkup/v2/messages HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}",
        b"POST /linkup/v2/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 1e11\r\n\r\n{}",
        b"POST /linkup/v2/messages HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n{}",
        b"POST /linkup/v2/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n{}",
        b"POST /linkup/v2/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 50\r\n\r\n{}",
        b"GET /linkup/v2/accounts\r\n",
        b"GET /linkup/v2/accounts\r\n\r\n",
    ],
    ids=[
        "length-abc",
        "length-1e11",
        "length-negative",
        "length-huge",
        "length-twice",
        "http-0.9",
        "http-0.9-blank-line",
    ],
)
def test_malformed_requests_are_a_400_and_closed(sandbox, capfd, request_bytes):
    threads = threading.active_count()
    answer, closed = raw_exchange(sandbox.base_url, request_bytes)
    assert answer.startswith(b"HTTP/1.") and b" 400 " in answer.split(b"\r\n", 1)[0], answer[:200]
    assert closed, "the connection was left open"
    assert vendor_ok(sandbox.base_url)
    deadline = time.monotonic() + 2
    while threading.active_count() > threads and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() <= threads, "a handler thread is still busy with the bad request"
    assert "Traceback" not in capfd.readouterr().err


def test_a_corrupt_rule_changes_the_answer_once_and_counts(sandbox):
    rule = {
        "kind": "corrupt",
        "vendor": "linkup",
        "route": "GET /accounts",
        "field": "data.items.*.account_id",
    }
    rule.update({"value": 7, "times": 1})
    assert requests.put(f"{sandbox.base_url}/_sandbox/faults", json={"rules": [rule]}).ok
    first = requests.get(f"{sandbox.base_url}/linkup/v2/accounts", headers=KEY).json()
    second = requests.get(f"{sandbox.base_url}/linkup/v2/accounts", headers=KEY).json()
    assert {a["account_id"] for a in first["data"]["items"]} == {7}
    assert all(isinstance(a["account_id"], str) for a in second["data"]["items"])
    assert sandbox.stats()["faults"]["linkup corrupt"] == 1


def test_the_console_script_exits_within_two_seconds_of_sigterm():
    script = Path(sys.executable).with_name("linkmsg-sandbox")
    proc = subprocess.Popen([str(script), "--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        base_url = json.loads(proc.stdout.readline())["base_url"]
        idle = requests.Session()  # a keep-alive connection left open, and a request in flight
        assert idle.get(f"{base_url}/_sandbox/stats").ok
        host, port = base_url.removeprefix("http://").split(":")
        stalled = socket.create_connection((host, int(port)))
        stalled.sendall(b"POST /linkup/v2/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        time.sleep(0.1)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 2
        stalled.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("sizes", ["{not json", "[1, 2]", '{"linkup": 5}'])
def test_the_console_script_refuses_bad_sizes_with_a_usage_error(sizes):
    script = Path(sys.executable).with_name("linkmsg-sandbox")
    done = subprocess.run([str(script), "--sizes", sizes], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--sizes" in done.stderr and "Traceback" not in done.stderr


def test_an_empty_rule_list_clears_the_faults_as_documented(sandbox):
    url = f"{sandbox.base_url}/_sandbox/faults"
    assert requests.put(url, data=json.dumps({"rules": [{"p_5xx": 1}]})).json() == {"rules": 1}
    assert requests.put(url, data=json.dumps({"rules": []})).json() == {"rules": 0}
    assert vendor_ok(sandbox.base_url)


def test_no_sandbox_module_passes_five_hundred_lines():
    folder = Path(__file__).parents[2] / "airflow_provider_linkmsg" / "sandbox"
    for name in ("core.py", "admin.py", "server.py", "faults.py"):
        assert len((folder / name).read_text().splitlines()) <= 500, name
