"""
Connection forms on Airflow 2.x, generated from the ``conn-fields`` that Airflow 3 reads.

Airflow 3 builds each connection form from ``get_provider_info()`` (``conn-fields`` and
``ui-field-behaviour``) and ignores hook methods when those are declared. Airflow 2.x reads neither key:
it asks the hook class for ``get_connection_form_widgets()`` and ``get_ui_field_behaviour()``, and only
when they sit in that class's own ``__dict__``. :class:`ConnectionFormMixin` writes both classmethods into
every hook class that names a ``conn_type``, derived from the one declaration, so the two forms cannot drift.

Airflow 2.x accepts only ``StringField``, ``PasswordField``, ``IntegerField`` and ``BooleanField``: a number
becomes a text field with a number check, an enum a text field with a choice check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class FormField:
    """One form field as declared in ``conn-fields``, reduced to what a 2.x form needs."""

    name: str
    label: str
    kind: str  # "string", "password", "integer", "number", "boolean"
    description: str | None = None
    default: Any = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None


def _connection_type(conn_type: str) -> dict[str, Any]:
    from airflow_provider_linkmsg.get_provider_info import get_provider_info

    for declared in get_provider_info()["connection-types"]:
        if declared["connection-type"] == conn_type:
            return declared
    raise LookupError(f"connection type {conn_type!r} is not declared in get_provider_info()")


def _kind(schema: dict[str, Any]) -> str:
    types = schema.get("type", "string")
    types = [types] if isinstance(types, str) else [t for t in types if t != "null"]
    kind = types[0] if types else "string"
    if kind == "string" and schema.get("format") == "password":
        return "password"
    if kind not in {"string", "integer", "number", "boolean"}:
        raise ValueError(f"conn-fields type {kind!r} has no Airflow 2.x form field")
    return kind


def form_fields(conn_type: str) -> list[FormField]:
    """The declared ``conn-fields`` of ``conn_type`` as :class:`FormField` values, in declaration order."""
    fields = []
    for name, spec in _connection_type(conn_type).get("conn-fields", {}).items():
        schema = spec.get("schema", {})
        enum = schema.get("enum")
        fields.append(
            FormField(
                name=name,
                label=spec.get("label", name),
                kind=_kind(schema),
                description=spec.get("description"),
                default=schema.get("default"),
                choices=tuple(c for c in enum if c is not None) if enum else None,
                minimum=schema.get("minimum"),
            )
        )
    return fields


def field_behaviour(conn_type: str) -> dict[str, Any]:
    """``ui-field-behaviour`` of ``conn_type`` in the shape of 2.x ``get_ui_field_behaviour()``."""
    declared = _connection_type(conn_type).get("ui-field-behaviour", {})
    return {
        "hidden_fields": list(declared.get("hidden-fields", [])),
        "relabeling": dict(declared.get("relabeling", {})),
        "placeholders": dict(declared.get("placeholders", {})),
    }


def _number_check(field: FormField):
    from wtforms.validators import ValidationError

    def check(form: Any, wtfield: Any) -> None:
        raw = (wtfield.data or "").strip() if isinstance(wtfield.data, str) else wtfield.data
        if raw in (None, ""):
            return
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValidationError(f"{field.label}: {raw!r} is not a number") from None
        if field.minimum is not None and value < field.minimum:
            raise ValidationError(f"{field.label}: must be at least {field.minimum}")

    return check


def widgets(conn_type: str) -> dict[str, Any]:
    """wtforms fields for the 2.x connection form, with Flask-AppBuilder's widgets where it is installed."""
    from wtforms import BooleanField, IntegerField, PasswordField, StringField
    from wtforms.validators import AnyOf, NumberRange, Optional
    from wtforms.widgets import PasswordInput, TextInput

    try:  # every Airflow 2.x has it; without it (Airflow 3 without FAB) the plain wtforms inputs
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget as PasswordWidget
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget as TextWidget
    except ImportError:
        PasswordWidget, TextWidget = PasswordInput, TextInput

    result: dict[str, Any] = {}
    for f in form_fields(conn_type):
        description = f.description or ""
        if f.kind == "password":
            result[f.name] = PasswordField(f.label, widget=PasswordWidget(), description=description)
            continue
        if f.kind == "boolean":
            result[f.name] = BooleanField(f.label, default=bool(f.default), description=description)
            continue
        checks: list[Any] = [Optional()]
        if f.minimum is not None and f.kind == "integer":
            checks.append(NumberRange(min=f.minimum))
        if f.kind == "number":
            checks.append(_number_check(f))
        if f.choices:
            checks.append(
                AnyOf(list(f.choices), message=f"{f.label}: one of {', '.join(map(str, f.choices))}")
            )
        field_class = IntegerField if f.kind == "integer" else StringField
        default = f.default if f.default is None or f.kind == "integer" else str(f.default)
        result[f.name] = field_class(
            f.label, widget=TextWidget(), default=default, validators=checks, description=description
        )
    return result


class ConnectionFormMixin:
    """
    Give a hook class the Airflow 2.x connection-form classmethods, generated from its ``conn-fields``.

    Airflow 3 does not call them while ``conn-fields`` are declared (it reads the declaration itself).
    """

    conn_type: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "conn_type" not in cls.__dict__:
            return  # an abstract base or a user's subclass: the vendor hook already carries the form
        # Airflow 2.x reads these only from the class's own __dict__, never inherited ones.
        cls.get_connection_form_widgets = classmethod(lambda c: widgets(c.conn_type))
        cls.get_ui_field_behaviour = classmethod(lambda c: field_behaviour(c.conn_type))
