"""
From a fresh copy of the repository: `make dist` builds a wheel and an sdist; the wheel installs into a fresh
venv with its extras, and that venv's Airflow lists the provider, its configuration and its extra links.
Without an extra, an export names it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from airflow_provider_linkmsg.get_provider_info import get_provider_info

ROOT = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).with_name("uv")
EXTRAS = "parquet,sqlite,openlineage"  # not postgres: the venv also shows what a missing extra says

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

POSTGRES_EXPORT = r"""
import json, os, sys
from airflow.sdk.execution_time.context import OutletEventAccessors
from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.io.staging import StagingWriter
from airflow_provider_linkmsg.operators.export import LinkMsgExportToSqlOperator
from airflow_provider_linkmsg.records import Message

with StagingWriter(sys.argv[1], vendor="linkup", record_type="message", run_id="r") as writer:
    writer.write(Message(vendor="linkup", account_id="a", conversation_id="c", message_id="m",
                         sent_at="2024-05-01T00:00:00.000000Z", direction="inbound", sender_id=None,
                         sender_name=None, text="hi", message_type="TEXT", has_attachments=False,
                         channel="standard"))
manifest = writer.close()
op = LinkMsgExportToSqlOperator(task_id="t", manifests=manifest.summary(), conn_id="pg_wh")
try:
    op.execute({"outlet_events": OutletEventAccessors()})
except LinkMsgValidationError as err:
    print(json.dumps({"error": str(err)}))
else:
    print(json.dumps({"error": None}))
"""


def _run(args: list, *, cwd: Path | None = None, env: dict | None = None, timeout: int = 600) -> str:
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory) -> Path:
    """The repository's files as a clone has them (tracked and new, not ignored): no .venv, no dist/."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs the repository's git checkout")
    copy = tmp_path_factory.mktemp("clone") / "airflow-provider-linkmsg"
    listed = _run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    assert not (copy / ".venv").exists() and not (copy / "dist").exists()
    return copy


@pytest.fixture(scope="module")
def built(fresh_copy) -> dict[str, Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV"))}
    _run(["make", "dist"], cwd=fresh_copy, env=env, timeout=900)
    wheels = list((fresh_copy / "dist").glob("*.whl"))
    sdists = list((fresh_copy / "dist").glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in (fresh_copy / "dist").iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="module")
def venv(built, tmp_path_factory) -> dict:
    """A fresh venv with the wheel and its extras (pinned by requirements.lock; uv's cache serves them)."""
    where = tmp_path_factory.mktemp("venv") / "venv"
    _run([UV, "venv", "-q", "-p", sys.executable, where])
    python = where / "bin" / "python"
    requirement = f"{built['wheel']}[{EXTRAS}]"
    _run(
        [UV, "pip", "install", "-q", "-p", python, requirement, "-c", ROOT / "requirements.lock"], timeout=900
    )
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "VIRTUAL_ENV", "PYTHON"))}
    env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    return {"python": python, "airflow": where / "bin" / "airflow", "env": env, "home": home}


def test_wheel_metadata_carries_the_license_and_the_extras(built):
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = wheel.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        text = wheel.read(metadata).decode()
        license_file = next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))
        assert "Apache License" in wheel.read(license_file).decode()
    assert "License-Expression: Apache-2.0" in text
    for extra in ("parquet", "postgres", "sqlite", "openlineage"):
        assert f"Provides-Extra: {extra}" in text
    assert 'apache-airflow-providers-sqlite>=4.0 ; extra == "sqlite"' in text
    # The README's links must work on a package page: absolute, never into docs/ relatively.
    assert "](docs/" not in text and "](example_dags" not in text


def test_sdist_carries_what_a_build_and_the_tests_need(built):
    with tarfile.open(built["sdist"]) as sdist:
        names = {n.split("/", 1)[1] for n in sdist.getnames() if "/" in n}
    assert {"LICENSE", "README.md", "pyproject.toml", "Makefile", "requirements.lock"} <= names
    assert {"docs/operators.md", "example_dags/example_unified_inbox.py"} <= names
    assert "airflow_provider_linkmsg/get_provider_info.py" in names


def test_the_installed_wheel_registers_with_airflow(venv):
    airflow, env = venv["airflow"], venv["env"]
    providers = json.loads(_run([airflow, "providers", "list", "--output", "json"], env=env))
    ours = [p for p in providers if p["package_name"] == "airflow-provider-linkmsg"]
    assert ours and ours[0]["version"] == get_provider_info()["versions"][0]
    sqlite_listed = {p["package_name"] for p in providers}
    assert "apache-airflow-providers-sqlite" in sqlite_listed, "the sqlite extra brings its provider"
    assert "apache-airflow-providers-postgres" not in sqlite_listed

    configs = json.loads(_run([airflow, "providers", "configs", "--output", "json"], env=env))
    sections = {c["provider_config"][0]: c["provider_config"][1] for c in configs}
    assert set(sections["airflow-provider-linkmsg"]["linkmsg"]["options"]) == set(
        get_provider_info()["config"]["linkmsg"]["options"]
    )

    links = json.loads(_run([airflow, "providers", "links", "--output", "json"], env=env))
    listed = {link["extra_link_class_name"] for link in links}
    ours_listed = {name for name in listed if name.startswith("airflow_provider_linkmsg.")}
    assert ours_listed == set(get_provider_info().get("extra-links", [])), "every declared link, no other"
    assert ours_listed == {
        "airflow_provider_linkmsg.operators.links.LinkedInThreadLink",
        "airflow_provider_linkmsg.operators.links.VendorDashboardLink",
    }

    hooks = json.loads(_run([airflow, "providers", "hooks", "--output", "json"], env=env))
    assert {h["connection_type"] for h in hooks if h["package_name"] == "airflow-provider-linkmsg"} == {
        "koneksi",
        "connectsafely",
        "linkedapi",
        "linkup",
    }
    assert (venv["python"].parent / "linkmsg-sandbox").exists()


def test_without_the_postgres_extra_a_sql_export_names_it(venv, tmp_path):
    env = {
        **venv["env"],
        "AIRFLOW_CONN_PG_WH": json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "schema": "wh"}),
    }
    out = _run([venv["python"], "-c", POSTGRES_EXPORT, tmp_path / "staging"], env=env, cwd=tmp_path)
    error = json.loads(out.strip().splitlines()[-1])["error"]
    assert error is not None
    assert "'pg_wh'" in error
    assert 'pip install "airflow-provider-linkmsg[postgres]"' in error
