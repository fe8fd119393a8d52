"""
`make airflow`: a local Airflow (API server + UI, scheduler, DAG processor, triggerer) with the bundled sandbox,
to watch the example DAGs and try connections in the UI.

- the UI on 127.0.0.1 at a free port, or the one given (``PORT=8080 make airflow`` / ``--port``);
- the sandbox's connections (one per vendor) and the examples' SQLite warehouse stored in the metadata
  database, so the UI lists them and can edit them; the Test button enabled;
- its state under ``.airflow/`` (metadata database, password, connections, run history, staged data) kept
  from one start to the next; ``make clean`` removes it;
- a parallelism that fits a small machine (``--parallelism``, default 2 x the CPU count, at most 8);
- Ctrl-C (SIGINT) or SIGTERM stops every process it started, and the sandbox, without a traceback.

Each component logs to ``.airflow/logs/<component>.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW = Path(sys.executable).with_name("airflow")
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
WAREHOUSE_CONN_ID = "linkmsg_warehouse"
STOP_GRACE_S = 20.0


class Stop(Exception):
    """SIGINT or SIGTERM arrived: stop everything and exit quietly."""


def _raise_stop(signum: int, frame: Any) -> None:
    raise Stop(signal.Signals(signum).name)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def environment(state: Path, port: int, parallelism: int) -> dict[str, str]:
    """The environment of every Airflow process: settings that make a small, persistent local Airflow."""
    home = state / "airflow"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    env["PATH"] = f"{AIRFLOW.parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "example_dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__AUTH_MANAGER": (
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__CORE__PARALLELISM": str(parallelism),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
            "AIRFLOW__API__WORKERS": "1",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__STANDALONE_DAG_PROCESSOR": "True",
            "AIRFLOW__OPENLINEAGE__DISABLED": "True",
            "AIRFLOW__LINKMSG__STAGING_PATH": str(state / "staging"),
            "AIRFLOW_VAR_LINKMSG_EXPORT_PATH": str(state / "export"),
        }
    )
    return env


def wanted_connections(sandbox: Any, state: Path) -> dict[str, dict[str, Any]]:
    """The connections the examples use: one per vendor at the sandbox, and the SQLite warehouse."""
    conns = sandbox.connections()
    conns[WAREHOUSE_CONN_ID] = {"conn_type": "sqlite", "host": str(state / "warehouse.db")}
    return conns


def sync_connections(wanted: dict[str, dict[str, Any]]) -> list[str]:
    """
    Store ``wanted`` in the metadata database (runs inside the Airflow environment).

    A missing connection is created. An existing one is left as the user edited it, except its
    ``base_url`` when that still points at a sandbox on loopback (the sandbox's port changes between
    starts). Returns a line per change.
    """
    from airflow.models import Connection
    from airflow.utils.session import create_session

    changes = []
    with create_session() as session:
        for conn_id, spec in wanted.items():
            existing = session.query(Connection).filter(Connection.conn_id == conn_id).one_or_none()
            if existing is None:
                extra = spec.get("extra")
                session.add(
                    Connection(
                        conn_id=conn_id,
                        conn_type=spec["conn_type"],
                        host=spec.get("host"),
                        password=spec.get("password"),
                        extra=json.dumps(extra) if extra is not None else None,
                    )
                )
                changes.append(f"created {conn_id}")
                continue
            new_url = (spec.get("extra") or {}).get("base_url")
            extra = existing.extra_dejson
            old_url = extra.get("base_url", "")
            if new_url and old_url != new_url and old_url.startswith("http://127.0.0.1:"):
                extra["base_url"] = new_url
                existing.set_extra(json.dumps(extra))
                changes.append(f"{conn_id}: base_url {old_url} -> {new_url}")
    return changes


def prepare(env: dict[str, str], wanted: dict[str, dict[str, Any]], logs: Path) -> None:
    """Migrate the metadata database and store the connections, in child processes."""
    for name, args, stdin in (
        ("db-migrate", [str(AIRFLOW), "db", "migrate"], None),
        ("connections", [sys.executable, __file__, "--sync-connections"], json.dumps(wanted)),
    ):
        with open(logs / f"{name}.log", "w") as out:
            result = subprocess.run(  # own session: Ctrl-C reaches this script, which stops the child
                args,
                env=env,
                input=stdin,
                text=True,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=False,
                start_new_session=True,
            )
        if result.returncode != 0:
            tail = (logs / f"{name}.log").read_text()[-3000:]
            raise SystemExit(f"{name} failed (exit {result.returncode}); {logs / name}.log:\n{tail}")
    print((logs / "connections.log").read_text().strip() or "connections unchanged")


def start(env: dict[str, str], logs: Path, procs: dict[str, subprocess.Popen]) -> None:
    """
    Start each component in its own session (the terminal's Ctrl-C reaches only this script), recording
    each in ``procs`` as soon as it exists, so that a Ctrl-C in between still stops it.
    """
    for name in COMPONENTS:
        out = open(logs / f"{name}.log", "a")  # noqa: SIM115 - the child keeps writing to it
        procs[name] = subprocess.Popen(
            [str(AIRFLOW), name],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        out.close()


def _descendants(procs: dict[str, subprocess.Popen]) -> list[Any]:
    import psutil

    found = []
    for proc in procs.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(proc.pid)
            found.extend([parent, *parent.children(recursive=True)])
    return found


def stop(procs: dict[str, subprocess.Popen], grace: float = STOP_GRACE_S) -> None:
    """SIGTERM every component's process group and every descendant, then SIGKILL what is left."""
    import psutil

    everything = _descendants(procs)
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
    for p in everything:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(everything, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=5)
    for proc in procs.values():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def admin_password(env: dict[str, str]) -> str | None:
    path = Path(env["AIRFLOW_HOME"]) / "simple_auth_manager_passwords.json.generated"
    with contextlib.suppress(OSError, ValueError):
        return json.loads(path.read_text()).get("admin")
    return None


def supervise(procs: dict[str, subprocess.Popen], env: dict[str, str], port: int, logs: Path) -> int:
    announced = False
    while True:
        for name, proc in procs.items():
            if proc.poll() is not None:
                tail = (logs / f"{name}.log").read_text()[-2000:]
                print(f"{name} exited with {proc.returncode}; {logs / name}.log ends with:\n{tail}")
                return 1
        if not announced and healthy(port):
            announced = True
            password = admin_password(env)
            print(
                f"Airflow is up: http://127.0.0.1:{port}  (user admin, password {password or '(see the file)'}; "
                f"kept in {Path(env['AIRFLOW_HOME']) / 'simple_auth_manager_passwords.json.generated'})\n"
                "The sandbox connections are under Admin > Connections. On Airflow 3.3.2 the UI's Test button "
                "fails for every connection (the UI sends port 0); test from a shell instead:\n"
                f"  AIRFLOW_HOME={env['AIRFLOW_HOME']} AIRFLOW__CORE__TEST_CONNECTION=Enabled \\\n"
                f"    {AIRFLOW} connections test linkup_default\n"
                "Ctrl-C stops everything.",
                flush=True,
            )
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT") or 0), help="0: a free port")
    parser.add_argument("--state", type=Path, default=ROOT / ".airflow", help="where the state is kept")
    parser.add_argument("--parallelism", type=int, default=min(8, 2 * (os.cpu_count() or 1)))
    parser.add_argument("--sync-connections", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.sync_connections:  # the child that writes connections inside the Airflow environment
        print("\n".join(sync_connections(json.load(sys.stdin))))
        return 0

    port = args.port or free_port()
    if not port_is_free(port):
        raise SystemExit(f"port {port} on 127.0.0.1 is in use: choose another (PORT=8081 make airflow)")
    state = args.state.resolve()
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    sys.path.insert(0, str(Path(__file__).parent))
    from demo import SIZES

    from airflow_provider_linkmsg.sandbox import Sandbox

    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    procs: dict[str, subprocess.Popen] = {}
    sandbox = Sandbox(seed=0, sizes=SIZES)
    try:
        sandbox.start()
        env = environment(state, port, args.parallelism)
        print(f"sandbox at {sandbox.base_url}; state in {state}; logs in {logs}", flush=True)
        prepare(env, wanted_connections(sandbox, state), logs)
        start(env, logs, procs)
        print(f"started {', '.join(f'{n} (pid {p.pid})' for n, p in procs.items())}", flush=True)
        return supervise(procs, env, port, logs)
    except Stop as sig:
        print(f"\n{sig}: stopping {len(procs)} component(s) and the sandbox ...", flush=True)
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop(procs)
        sandbox.stop()
        if procs:
            print("stopped", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
