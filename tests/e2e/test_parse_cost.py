"""
What a DAG file pays, on top of Airflow itself, to import our operators and sensors (issue 16).

Airflow parses every DAG file again and again (every 30 s by default), each time in a process forked from
one that has Airflow loaded. This test does the same: one fresh interpreter loads the baseline, what any
DAG file pays whatever provider it uses (``BASELINE`` below: the compat layer's ``DAG``, ``Asset``,
``task``, ``BaseOperator``, ``BaseSensorOperator``, and DAGs with a cron, a timedelta and an asset schedule,
a plain task, a ``@task`` and a mapped task built from them), then forks one child per measurement. Each
child imports one module of ours, or runs one example DAG file, and reports the modules that appeared and
the CPU time it took. Modules are byte-compiled (as an installed provider is), under a private
``pycache_prefix``: the first fork compiles them, the best of the others is what a DAG file pays.

The main check is the set of modules: requests, the hooks and their pydantic schemas, common.sql,
pyarrow ... belong inside ``execute`` (where they are used), never on the parse path. The time bound,
50 ms of CPU per file, is the issue's acceptance; it is measured as CPU time (not wall time, which a
loaded machine stretches) and the best of several forks is kept, so load does not make it flaky.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_provider_linkmsg.operators
import airflow_provider_linkmsg.sensors

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
MODULES = sorted(
    f"{package.__name__}.{info.name}"
    for package in (airflow_provider_linkmsg.operators, airflow_provider_linkmsg.sensors)
    for info in pkgutil.iter_modules(package.__path__)
)
FILES = sorted(str(p) for p in EXAMPLES.glob("example_*.py"))

#: CPU seconds a DAG file may spend on our imports on top of the baseline (the issue's acceptance)
BUDGET_SECONDS = 0.050
#: forks per target; the best one is kept (what the code costs, without the machine's noise)
REPEATS = 5

#: what must not be imported while a DAG file is parsed: (prefix, why); a module matches a prefix when
#: it is the prefix or below it
HEAVY = {
    "requests": "HTTP client: the hooks' transport, imported by the hooks",
    "urllib3": "HTTP client (requests)",
    "charset_normalizer": "requests' encoding detection",
    "httpx": "the triggers' async HTTP client",
    "aiohttp": "an async HTTP client",
    "sqlparse": "common.sql's SQL parser",
    "airflow.providers.common.sql.hooks": "common.sql: imported by the SQL export's execute",
    "airflow.providers.common.sql.operators": "common.sql: imported by the SQL export's execute",
    "pyarrow": "Parquet: imported by the Parquet writer",
    "pandas": "not used at parse time",
    "airflow_provider_linkmsg.hooks": "our hooks: built lazily, imported where they are used",
    "airflow_provider_linkmsg.triggers": "our triggers: imported when a task defers",
    "airflow_provider_linkmsg.schemas": "our pydantic answer schemas (used by the hooks)",
    "airflow_provider_linkmsg.sandbox": "the sandbox: never on the parse path",
    "airflow_provider_linkmsg.validation": "argument checks: run in execute",
    "airflow_provider_linkmsg.engine.retrieval": "the inbox engine: runs in execute",
    "airflow_provider_linkmsg.io.staging": "staging: runs in execute",
    "airflow_provider_linkmsg.io.file_export": "the file export: runs in execute",
}

#: below a heavy prefix, what a DAG file may import: the activity watchers, which an ``AssetWatcher`` takes
#: at parse time (their looks import the hooks lazily), the triggers package holding them, and the triggers'
#: class logger (triggers/logs.py: Airflow's LoggingMixin only, already loaded by any DAG file)
ALLOWED = {
    "airflow_provider_linkmsg.triggers",
    "airflow_provider_linkmsg.triggers.logs",
    "airflow_provider_linkmsg.triggers.watchers",
}

#: what any DAG file pays, whatever provider it uses: Airflow's SDK and DAGs built with it
BASELINE = r"""
from datetime import datetime, timedelta

from airflow.providers.common.compat.sdk import DAG, Asset, BaseOperator, BaseSensorOperator, task


class _Noop(BaseOperator):
    template_fields = ("value",)

    def __init__(self, *, value=None, **kwargs):
        super().__init__(**kwargs)
        self.value = value

    def execute(self, context):
        return self.value


class _Wait(BaseSensorOperator):
    def poke(self, context):
        return True


@task
def _listed():
    return [1, 2]


for _schedule in ("@daily", "0 6 * * *", timedelta(hours=1), [Asset("x-baseline://warm/up")], None):
    with DAG(dag_id="baseline", schedule=_schedule, start_date=datetime(2026, 1, 1), catchup=False):
        _first = _Noop(task_id="first", value="{{ ds }}")
        _mapped = _Noop.partial(task_id="mapped", map_index_template="{{ task.value }}").expand(value=_listed())
        _first >> _Wait(task_id="wait", mode="reschedule") >> _mapped
"""

PROBE = r"""
import gc, json, os, runpy, sys, time

exec(compile(sys.argv[1], "<baseline>", "exec"), {"__name__": "baseline"})
gc.collect()
# From here on, compiled modules are cached under a private prefix, even where the environment turns
# bytecode off: an installed provider is byte-compiled, so the first fork pays the compilation and the
# best of the others shows what a DAG file pays.
sys.pycache_prefix, sys.dont_write_bytecode = sys.argv[4], False
results = {}
for target in json.loads(sys.argv[2]):
    runs = []
    for _ in range(int(sys.argv[3])):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: what parsing one DAG file costs after the baseline
            os.close(read)
            before = set(sys.modules)
            cpu, wall = time.process_time(), time.perf_counter()
            if target.endswith(".py"):
                runpy.run_path(target, run_name="dag_file")
            else:
                __import__(target)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            with os.fdopen(write, "w") as out:
                json.dump({"cpu": cpu, "wall": wall, "new": sorted(set(sys.modules) - before)}, out)
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as answer:
            text = answer.read()
        _, status = os.waitpid(pid, 0)
        if status != 0 or not text:
            raise SystemExit(f"importing {target} failed in the child (status {status})")
        runs.append(json.loads(text))
    results[target] = runs
print(json.dumps(results))
"""


def heavy_modules(modules: list[str]) -> dict[str, str]:
    """Per ``HEAVY`` prefix that ``modules`` reach: why it is heavy and the modules below it."""
    found: dict[str, list[str]] = {}
    for module in modules:
        if module in ALLOWED or module.startswith("airflow_provider_linkmsg.triggers.watchers."):
            continue
        for prefix in HEAVY:
            if module == prefix or module.startswith(prefix + "."):
                found.setdefault(prefix, []).append(module)
    return {prefix: f"{HEAVY[prefix]}: {', '.join(sorted(found[prefix])[:4])}" for prefix in sorted(found)}


@pytest.fixture(scope="module")
def costs(tmp_path_factory) -> dict[str, dict]:
    """Per target: the best CPU and wall seconds over ``REPEATS`` forks, and the modules it imported."""
    targets = MODULES + FILES
    pycache = tmp_path_factory.mktemp("pycache")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, BASELINE, json.dumps(targets), str(REPEATS), str(pycache)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    report = {}
    for target, measured in runs.items():
        report[target] = {
            "cpu": min(r["cpu"] for r in measured),
            "wall": min(r["wall"] for r in measured),
            "new": sorted(set().union(*(r["new"] for r in measured))),
        }
        name = Path(target).name if target.endswith(".py") else target
        print(
            f"{name}: {1000 * report[target]['cpu']:.1f} ms CPU, {1000 * report[target]['wall']:.1f} ms wall "
            f"(best of {REPEATS}), {len(report[target]['new'])} new module(s)"
        )
    return report


def test_every_operator_sensor_module_and_example_dag_is_measured():
    assert {m.rsplit(".", 1)[1] for m in MODULES} >= {
        "connectsafely",
        "export",
        "koneksi",
        "linkedapi",
        "linkup",
    }
    assert any(m.startswith("airflow_provider_linkmsg.sensors.") for m in MODULES)
    assert len(FILES) >= 6


@pytest.mark.parametrize(
    "target",
    MODULES + FILES,
    ids=[m.removeprefix("airflow_provider_linkmsg.") for m in MODULES] + [Path(f).stem for f in FILES],
)
def test_a_dag_file_imports_nothing_heavy_and_stays_within_50_ms(costs, target):
    measured = costs[target]
    heavy = heavy_modules(measured["new"])
    assert heavy == {}, f"{target} imports at parse time:\n" + "\n".join(
        f"  {k} ({v})" for k, v in heavy.items()
    )
    assert measured["cpu"] <= BUDGET_SECONDS, (
        f"{target} costs {1000 * measured['cpu']:.0f} ms of CPU on top of Airflow (best of {REPEATS}; budget "
        f"{1000 * BUDGET_SECONDS:.0f} ms); it imports {len(measured['new'])} modules: {measured['new']}"
    )


def test_the_operators_defaults_written_out_for_cheap_imports_match_the_hooks():
    """Default connection ids and page sizes are literals in the operators (so they import no hook)."""
    import inspect

    from airflow_provider_linkmsg.hooks.connectsafely import MAX_COUNT, ConnectSafelyHook
    from airflow_provider_linkmsg.hooks.koneksi import KoneksiHook
    from airflow_provider_linkmsg.hooks.linkedapi import LinkedApiHook
    from airflow_provider_linkmsg.hooks.linkup import LinkupHook
    from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
    from airflow_provider_linkmsg.operators.koneksi import (
        KoneksiRequestMessageGenerationOperator,
        KoneksiRetrieveMessagesOperator,
    )
    from airflow_provider_linkmsg.operators.linkedapi import (
        LinkedApiRetrieveMessagesOperator,
        LinkedApiSyncConversationsOperator,
    )
    from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator
    from airflow_provider_linkmsg.sensors.koneksi import KoneksiGenerationSensor

    expected = {
        ConnectSafelyRetrieveMessagesOperator: ("connectsafely_conn_id", ConnectSafelyHook),
        KoneksiRequestMessageGenerationOperator: ("koneksi_conn_id", KoneksiHook),
        KoneksiRetrieveMessagesOperator: ("koneksi_conn_id", KoneksiHook),
        KoneksiGenerationSensor: ("koneksi_conn_id", KoneksiHook),
        LinkedApiRetrieveMessagesOperator: ("linkedapi_conn_id", LinkedApiHook),
        LinkedApiSyncConversationsOperator: ("linkedapi_conn_id", LinkedApiHook),
        LinkupRetrieveMessagesOperator: ("linkup_conn_id", LinkupHook),
    }
    for operator, (argument, hook) in expected.items():
        default = inspect.signature(operator.__init__).parameters[argument].default
        assert default == hook.default_conn_name, (operator.__name__, default)
    assert ConnectSafelyRetrieveMessagesOperator.default_page_size == MAX_COUNT
