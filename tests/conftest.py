"""
Test set-up shared by every suite.

Airflow reads its configuration once, at first import, so the environment is fixed here before anything
imports ``airflow``: a throw-away ``AIRFLOW_HOME`` with the embedded SQLite metadata database, no example
DAGs, and a DAGs folder of our own. Each pytest-xdist worker (``make test`` runs two) imports this file in
its own process, so each has its own home and metadata database. Fixture modules in ``tests/fixtures/`` are
loaded as plugins, one per concern (sandbox, Airflow database, PostgreSQL ...), so suites can add fixtures
without editing this file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_HOME = Path(tempfile.mkdtemp(prefix="linkmsg-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(_HOME / "dags")
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME / 'airflow.db'}"
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
os.environ["AIRFLOW__OPENLINEAGE__DISABLED"] = "True"
(_HOME / "dags").mkdir()

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if p.stem != "__init__"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """
    Modules with a ``slow`` test first, each module's order kept: with ``make test``'s two workers
    (``--dist loadfile`` hands out modules in this order) the minutes-long ones start at once instead of
    leaving one worker busy alone at the end.
    """
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)
