"""
Declared response schemas, one module per vendor, checked before a hook maps an answer.

:func:`parse` validates a decoded JSON answer against the route's pydantic model. A wrong type raises
:class:`LinkMsgResponseError` naming the vendor, the route and the field path
(``conversations.0.lastActivityAt``), before anything is mapped, so nothing is staged and no watermark
moves. The answer itself is returned unchanged: the hooks map the vendor's JSON as before, and ``raw``
keeps what the vendor sent.

Timestamps follow one rule (:mod:`airflow_provider_linkmsg.schemas.types`): epoch milliseconds or
ISO-8601, between LinkedIn's launch (2003-05-05) and one day after now. A number that is in range only
when read as seconds is refused as "seconds sent for milliseconds"; later ones as "in the far future".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import SchemaError, SchemaValidator, core_schema

from airflow_provider_linkmsg.exceptions import LinkMsgResponseError
from airflow_provider_linkmsg.hooks.transport.redact import masked

#: how much of a bad field's value an error quotes (after redaction, never before)
MAX_QUOTED = 80

M = TypeVar("M", bound=BaseModel)


def field_path(loc: tuple[Any, ...], data: Any, prefix: str = "") -> str:
    """
    The path in ``data`` of a pydantic error location, ``conversations.0.lastActivityAt``; ``(body)`` for
    the answer itself. Union-member tags that pydantic puts in locations (``int``, ``list[...]``) are
    dropped: only the keys and indexes that lead through ``data`` are kept (a missing key ends the path).
    """
    parts = [prefix] if prefix else []
    node = data
    for step in loc:
        if isinstance(node, dict) and isinstance(step, str):
            parts.append(step)
            node = node.get(step)
        elif isinstance(node, list) and isinstance(step, int):
            parts.append(str(step))
            node = node[step] if -len(node) <= step < len(node) else None
    return ".".join(parts) or "(body)"


def quoted(value: Any, redact: Callable[[str], str]) -> str:
    """
    ``repr(value)`` redacted as a whole, then cut to :data:`MAX_QUOTED` characters: a secret the cut would
    split is masked before the cut, so no prefix of it survives.
    """
    try:
        text = redact(repr(value))
    except RecursionError:  # nested deeper than repr goes
        return f"a {type(value).__name__} nested too deep to show"
    return text if len(text) <= MAX_QUOTED else text[:MAX_QUOTED] + "..."


class _Unsupported(Exception):
    """A model that :func:`_checker` leaves to pydantic's own validation."""


def _fields_only(schema: Any, configs: list[dict[str, Any]]) -> Any:
    """
    ``schema`` (a model's core schema) with each model replaced by its fields' validation: the same checks
    and error locations, no instance built (the fields' dict is what a field validator such as
    :func:`~airflow_provider_linkmsg.schemas.types.unique_ids` then sees). Each model's config goes into
    ``configs`` (the validator is built with it: strictness and the like apply to every field).
    """
    if isinstance(schema, list):
        return [_fields_only(item, configs) for item in schema]
    if not isinstance(schema, dict):
        return schema
    if schema.get("type") == "model":
        cls, fields, config = schema.get("cls"), schema.get("schema"), schema.get("config") or {}
        decorators = getattr(cls, "__pydantic_decorators__", None)
        if (
            decorators is None
            or decorators.model_validators
            or schema.get("root_model")
            or schema.get("custom_init")
            or schema.get("post_init")
            or not isinstance(fields, dict)
            or fields.get("type") != "model-fields"
            or fields.get("extras_schema") is not None
            or fields.get("computed_fields")
            or config.get("extra_fields_behavior") not in ("allow", "ignore")
        ):
            raise _Unsupported(cls)
        configs.append({k: v for k, v in config.items() if k not in ("title", "extra_fields_behavior")})
        inner = {**_fields_only(fields, configs), "extra_behavior": "ignore"}
        return core_schema.no_info_after_validator_function(_declared, inner, ref=schema.get("ref"))
    return {key: _fields_only(value, configs) for key, value in schema.items()}


def _declared(validated: tuple[dict[str, Any], Any, Any]) -> dict[str, Any]:
    return validated[0]


#: per model, its fields-only validator (``None``: the model is validated by pydantic as it is)
_CHECKERS: dict[type, SchemaValidator | None] = {}


def _checker(model: type[BaseModel]) -> SchemaValidator | None:
    """
    A validator that accepts what ``model`` accepts without building the model's instances. Models with a
    model validator, a root, a custom ``__init__``, an extra other than ``allow``/``ignore``, or nested
    models of different configs get none (pydantic validates them as they are).
    """
    try:
        return _CHECKERS[model]
    except KeyError:
        pass
    checker = None
    schema = model.__pydantic_core_schema__
    if isinstance(schema, dict):
        configs: list[dict[str, Any]] = []
        try:
            fields_only = _fields_only(schema, configs)
            if all(config == configs[0] for config in configs):
                checker = SchemaValidator(fields_only, core_schema.CoreConfig(**configs[0]))
        except (_Unsupported, SchemaError):
            checker = None
    _CHECKERS[model] = checker
    return checker


def parse(
    model: type[M],
    data: Any,
    *,
    vendor: str,
    route: str,
    prefix: str = "",
    redact: Callable[[str], str] | None = None,
) -> Any:
    """
    ``data`` if it fits ``model``, else :class:`LinkMsgResponseError` naming the first bad field.

    :param model: the route's answer model.
    :param data: the decoded JSON answer (or the part of it at ``prefix``).
    :param vendor: names the vendor in the error.
    :param route: ``METHOD /path`` (plus the action, for vendors with one endpoint) in the error.
    :param prefix: the path of ``data`` inside the answer, for the field path.
    :param redact: the hook's redactor (its connection's secrets, then Airflow's masker); Airflow's masker
        alone when not given. The vendor's text in the error (the field path, the value, the validator's
        words) passes it whole, before any shortening.
    """
    checker = _checker(model)
    if checker is not None:
        try:  # the common case, a valid answer: checked without building instances
            checker.validate_python(data)
            return data
        except ValidationError:
            pass  # the model itself says what is wrong, as it always has
    try:
        model.model_validate(data)
    except ValidationError as exc:
        scrub = redact or masked
        first = exc.errors(include_url=False)[0]
        path = scrub(field_path(tuple(first.get("loc") or ()), data, prefix))
        got = quoted(first.get("input"), scrub)
        count = exc.error_count()
        more = f" (and {count - 1} more problem(s))" if count > 1 else ""
        method, _, endpoint = route.partition(" ")
        error = LinkMsgResponseError(
            f"malformed answer: {path}: {scrub(str(first.get('msg')))} (got {got}){more}. Nothing from this "
            "answer was mapped or staged; the vendor's answer does not match its documented shape.",
            vendor=vendor,
            method=method or None,
            endpoint=endpoint or None,
        )
        error.field = path  # type: ignore[attr-defined]
        raise error from None
    return data
