"""
Sandbox throughput: small requests per second it serves, from client threads with keep-alive sessions.

The sandbox runs in its own process; the client uses raw ``http.client`` connections (the lightest
client available) in several threads, so the figure is the server's, not the client's.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from urllib.parse import urlsplit

from bench.common import print_table, sandbox_process


def _hammer(
    host: str, port: int, path: str, headers: dict[str, str], stop_at: float, counts: list[int]
) -> None:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    done = 0
    while time.monotonic() < stop_at:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        if response.status == 200:
            done += 1
    conn.close()
    counts.append(done)


def run(seconds: float = 5.0, threads: int = 8) -> dict[str, float]:
    with sandbox_process() as info:
        linkup = json.loads(info["connections"]["AIRFLOW_CONN_LINKUP_DEFAULT"])
        url = urlsplit(linkup["extra"]["base_url"])
        headers = {"x-api-key": linkup["password"]}
        counts: list[int] = []
        stop_at = time.monotonic() + seconds
        workers = [
            threading.Thread(
                target=_hammer,
                args=(url.hostname, url.port, f"{url.path}/accounts", headers, stop_at, counts),
            )
            for _ in range(threads)
        ]
        started = time.monotonic()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.monotonic() - started
    rps = sum(counts) / elapsed
    return {
        "benchmark": "sandbox",
        "requests": sum(counts),
        "seconds": elapsed,
        "requests_per_second": rps,
        "target": ">= 1000",
        "met": rps >= 1000,
    }


if __name__ == "__main__":
    print_table("Sandbox throughput", [run()])
