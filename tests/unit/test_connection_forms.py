"""
The Airflow 2.x connection forms (``hooks/forms.py``) are generated from the same ``conn-fields`` that
Airflow 3 reads: checked here field by field, by submitting values to the generated wtforms form, and in
a real ``ProvidersManager`` (on 3.x it reads the declaration, on 2.x our classmethods).
"""

from __future__ import annotations

import importlib

import pytest
from wtforms import BooleanField, Form, IntegerField, PasswordField, StringField

from airflow_provider_linkmsg.get_provider_info import get_provider_info
from airflow_provider_linkmsg.hooks.forms import field_behaviour, form_fields, widgets

DECLARED = {t["connection-type"]: t for t in get_provider_info()["connection-types"]}
# the only field classes Airflow 2.x accepts from a hook
ALLOWED = (StringField, PasswordField, IntegerField, BooleanField)


def _hook(conn_type: str) -> type:
    module, _, name = DECLARED[conn_type]["hook-class-name"].rpartition(".")
    return getattr(importlib.import_module(module), name)


class _FormData(dict):
    """What a browser posts: wtforms reads it through ``getlist``."""

    def getlist(self, key: str) -> list[str]:
        return [self[key]] if key in self else []


def _form(conn_type: str, data: dict[str, str]) -> Form:
    form_class = type("ConnectionForm", (Form,), dict(widgets(conn_type)))
    return form_class(formdata=_FormData(data) if data else None)


@pytest.mark.parametrize("conn_type", sorted(DECLARED))
def test_generated_widgets_match_the_declared_conn_fields(conn_type):
    declared = DECLARED[conn_type]["conn-fields"]
    generated = _hook(conn_type).get_connection_form_widgets()
    assert list(generated) == list(declared)
    form = _form(conn_type, {})
    for name, spec in declared.items():
        field = form[name]
        schema = spec["schema"]
        assert isinstance(field, ALLOWED), name
        assert field.label.text == spec["label"]
        assert field.description == spec.get("description", "")
        assert isinstance(field, PasswordField) == (schema.get("format") == "password"), name
        kinds = {t for t in schema["type"] if t != "null"}
        assert isinstance(field, IntegerField) == (kinds == {"integer"}), name
        if "default" in schema:
            assert str(field.data) == str(schema["default"]), name


@pytest.mark.parametrize("conn_type", sorted(DECLARED))
def test_generated_field_behaviour_matches_the_declared_one(conn_type):
    declared = DECLARED[conn_type]["ui-field-behaviour"]
    behaviour = _hook(conn_type).get_ui_field_behaviour()
    assert behaviour == {
        "hidden_fields": declared["hidden-fields"],
        "relabeling": declared["relabeling"],
        "placeholders": declared["placeholders"],
    }
    assert behaviour == field_behaviour(conn_type)


def test_the_form_refuses_what_the_declaration_refuses():
    bad = _form("linkedapi", {"api": "legacy", "connect_timeout": "soon", "burst": "0", "max_retries": "2"})
    assert not bad.validate()
    assert set(bad.errors) == {"api", "connect_timeout", "burst"}
    assert "seed" in bad.errors["api"][0]
    assert "not a number" in bad.errors["connect_timeout"][0]
    good = _form("linkedapi", {"api": "current", "connect_timeout": "2.5", "burst": "3", "base_url": ""})
    assert good.validate(), good.errors
    assert good.data["burst"] == 3
    assert good.data["connect_timeout"] == "2.5"


def test_every_declared_field_has_a_2x_form_field():
    for conn_type in DECLARED:
        names = [f.name for f in form_fields(conn_type)]
        assert names == list(DECLARED[conn_type]["conn-fields"])


def test_a_real_providers_manager_shows_every_declared_field_and_behaviour():
    """On Airflow 3 the manager reads conn-fields; on 2.x it calls the generated classmethods."""
    from airflow.providers_manager import ProvidersManager

    manager = ProvidersManager()
    form_widgets = manager.connection_form_widgets
    behaviours = manager.field_behaviours
    for conn_type, declared in DECLARED.items():
        for name, spec in declared["conn-fields"].items():
            widget = form_widgets[f"extra__{conn_type}__{name}"]
            assert widget.field_name == name
            assert widget.is_sensitive == (spec["schema"].get("format") == "password"), name
        assert set(behaviours[conn_type]["hidden_fields"]) == set(
            declared["ui-field-behaviour"]["hidden-fields"]
        )
        assert behaviours[conn_type]["relabeling"] == declared["ui-field-behaviour"]["relabeling"]
