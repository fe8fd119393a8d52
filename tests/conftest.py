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

import base64
import os
import secrets
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
# One set of keys for this process and every Airflow process it starts (API server, webserver, triggerer,
# CLI): without them, Airflow here runs with no Fernet key while the first CLI or server started on this
# home writes an airflow.cfg with keys of its own; a written, empty airflow.cfg keeps any from being generated.
os.environ["AIRFLOW__CORE__FERNET_KEY"] = base64.urlsafe_b64encode(os.urandom(32)).decode()
os.environ["AIRFLOW__API_AUTH__JWT_SECRET"] = secrets.token_urlsafe(64)
os.environ["AIRFLOW__API__SECRET_KEY"] = secrets.token_urlsafe(32)
os.environ["AIRFLOW__WEBSERVER__SECRET_KEY"] = secrets.token_urlsafe(32)
(_HOME / "airflow.cfg").write_text("# the tests' settings are in the environment (tests/conftest.py)\n")
(_HOME / "dags").mkdir()

pytest_plugins = sorted(
    f"tests.fixtures.{p.stem}"
    for p in (Path(__file__).parent / "fixtures").glob("*.py")
    if p.stem != "__init__"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """
    Modules with a ``slow`` test first, then the model-based suites (a minute or more each), each module's
    order kept: with ``make test``'s two workers (``--dist loadfile --no-loadscope-reorder`` hands out modules
    in this order) the minutes-long ones start at once instead of leaving one worker busy alone at the end.
    """
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    model = Path(__file__).parent / "model"
    items.sort(key=lambda item: (item.path not in slow, model not in item.path.parents))
