"""Registration: the provider-info dict passes Airflow's runtime schema and a real Airflow lists us."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from importlib.metadata import distribution
from pathlib import Path

import jsonschema
import pytest
from packaging.utils import canonicalize_name

from airflow_provider_linkmsg.get_provider_info import get_provider_info

CONN_TYPES = {"koneksi", "connectsafely", "linkedapi", "linkup"}
AIRFLOW = Path(sys.executable).with_name("airflow")


def test_provider_info_validates_against_airflows_runtime_schema():
    import airflow

    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    assert info["package-name"] == canonicalize_name(
        distribution("airflow-provider-linkmsg").metadata["Name"]
    )


def test_each_connection_type_names_an_importable_hook_with_the_declared_attributes():
    info = get_provider_info()
    assert {ct["connection-type"] for ct in info["connection-types"]} == CONN_TYPES
    for ct in info["connection-types"]:
        module, _, name = ct["hook-class-name"].rpartition(".")
        hook = getattr(importlib.import_module(module), name)
        assert hook.conn_type == ct["connection-type"]
        assert hook.default_conn_name == f"{hook.conn_type}_default"
        assert hook.conn_name_attr == f"{hook.conn_type}_conn_id"
        assert hasattr(hook, "test_connection")
        fields = ct["conn-fields"]
        assert fields["base_url"]["schema"]["default"].startswith("https://")
        assert {"host", "login", "port", "schema"} <= set(ct["ui-field-behaviour"]["hidden-fields"])
        for field, spec in fields.items():
            if any(s in field for s in ("key", "secret", "token")):
                assert spec["schema"].get("format") == "password", f"{field} must be a password field"


def test_vendor_specific_fields_are_declared():
    fields = {ct["connection-type"]: ct["conn-fields"] for ct in get_provider_info()["connection-types"]}
    assert fields["linkedapi"]["api"]["schema"]["default"] == "seed"
    assert "identification_token" in fields["linkedapi"]
    assert fields["koneksi"]["auth_style"]["schema"]["default"] == "api_key"
    assert "webhook_secret" in fields["koneksi"]


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory):
    env = dict(os.environ)
    env["AIRFLOW_HOME"] = str(tmp_path_factory.mktemp("cli-home"))
    # Airflow 3.0 writes its INFO log lines (alembic plugins, providers manager) to stdout, in front of the
    # JSON that --output json prints; only errors may be logged here
    env["AIRFLOW__LOGGING__LOGGING_LEVEL"] = "ERROR"
    return env


def _airflow(env, *args: str) -> str:
    result = subprocess.run(
        [str(AIRFLOW), *args], env=env, capture_output=True, text=True, timeout=120, check=True
    )
    return result.stdout


def test_a_real_airflow_lists_the_provider_and_its_four_connection_types(cli_env):
    providers = _airflow(cli_env, "providers", "list", "--output", "json")
    names = {p["package_name"] for p in json.loads(providers)}
    assert "airflow-provider-linkmsg" in names
    hooks = json.loads(_airflow(cli_env, "providers", "hooks", "--output", "json"))
    ours = {h["connection_type"]: h for h in hooks if h["package_name"] == "airflow-provider-linkmsg"}
    assert set(ours) == CONN_TYPES
    assert ours["linkup"]["class"] == "airflow_provider_linkmsg.hooks.linkup.LinkupHook"


def _options_read_by_the_package() -> set[str]:
    """Every ``[linkmsg]`` option the package's code reads: ``conf.get*("linkmsg", "<option>" ...)``."""
    import ast

    import airflow_provider_linkmsg

    found: set[str] = set()
    for path in Path(airflow_provider_linkmsg.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr.startswith("get")
                and isinstance(getattr(node.func.value, "id", None), str)
                and node.func.value.id == "conf"
                and len(node.args) >= 2
                and all(isinstance(a, ast.Constant) for a in node.args[:2])
                and node.args[0].value == "linkmsg"
            ):
                found.add(node.args[1].value)
    return found


def test_every_linkmsg_option_the_code_reads_is_declared_with_its_description_type_and_default():
    declared = get_provider_info()["config"]["linkmsg"]["options"]
    read = _options_read_by_the_package()
    assert "staging_path" in read, "the scan must see the option utils.default_staging_root reads"
    assert read <= set(declared), f"read but not declared in get_provider_info: {read - set(declared)}"
    for name, option in declared.items():
        assert option["description"].strip(), name
        assert option["type"] in {"string", "boolean", "integer", "float"}, name
        assert "default" in option and "example" in option and option["version_added"], name


def test_a_real_airflow_shows_the_linkmsg_section_and_reads_its_default_and_overrides(cli_env, tmp_path):
    configs = json.loads(_airflow(cli_env, "providers", "configs", "--output", "json"))
    ours = [c["provider_config"][1] for c in configs if c["provider_config"][0] == "airflow-provider-linkmsg"]
    assert ours, "airflow providers configs does not list airflow-provider-linkmsg"
    assert set(ours[0]["linkmsg"]["options"]) == set(get_provider_info()["config"]["linkmsg"]["options"])
    # The declared default reaches Airflow's conf (empty: the tasks fall back to $AIRFLOW_HOME/linkmsg) ...
    assert _airflow(cli_env, "config", "get-value", "linkmsg", "staging_path").strip() == ""
    listed = _airflow(cli_env, "config", "list", "--section", "linkmsg", "--include-descriptions")
    assert "staging_path" in listed and "Root of staged records" in listed
    # ... and the usual environment variable overrides it.
    env = {**cli_env, "AIRFLOW__LINKMSG__STAGING_PATH": str(tmp_path / "staged")}
    assert _airflow(env, "config", "get-value", "linkmsg", "staging_path").strip() == str(tmp_path / "staged")
