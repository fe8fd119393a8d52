"""
The fields-only schema check (:func:`airflow_provider_linkmsg.schemas._checker`) accepts exactly what the
pydantic models accept: the vendors' real answers (from the sandbox, over HTTP), and each of them changed
at every field (wrong types, coercible look-alikes, empty, missing, extra), are judged alike by both.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from airflow_provider_linkmsg import schemas
from airflow_provider_linkmsg.hooks import base

#: what a field is changed to: other JSON types, values that a lax check would coerce, empty and odd ones
REPLACEMENTS: list[Any] = [
    None,
    "",
    " ",
    "x",
    "5",
    "true",
    "1700000000000",
    "2024-05-01T10:00:00Z",
    0,
    1,
    -1,
    5.0,
    1.5,
    float("nan"),
    True,
    False,
    1_700_000_000,
    1_700_000_000_000,
    10**16,
    [],
    [1],
    [{}],
    {},
    {"a": 1},
]


def _variants(data: Any) -> Iterator[Any]:
    """``data`` with one field or item changed (replaced, removed, or a key added), for every place in it."""
    if isinstance(data, dict):
        for key, value in data.items():
            for replacement in REPLACEMENTS:
                yield {**data, key: replacement}
            yield {k: v for k, v in data.items() if k != key}
            for inner in _variants(value):
                yield {**data, key: inner}
        yield {**data, "addedByVendor": {"any": "thing"}}
    elif isinstance(data, list) and data:
        for index in range(min(len(data), 2)):  # the first two items stand for the rest
            for inner in _variants(data[index]):
                yield [*data[:index], inner, *data[index + 1 :]]
        yield [*data, copy.deepcopy(data[0])]  # a duplicate item (ids must be unique)


def _accepts(validate: Any, data: Any) -> bool:
    try:
        validate(data)
    except ValidationError:
        return False
    return True


@pytest.fixture
def answers(monkeypatch) -> list[tuple[type[BaseModel], Any]]:
    """Every (model, data) the hooks check, recorded while operators read from the sandbox."""
    seen: list[tuple[type[BaseModel], Any]] = []
    parse = base.parse

    def recording(model: type[BaseModel], data: Any, **kwargs: Any) -> Any:
        seen.append((model, copy.deepcopy(data)))
        return parse(model, data, **kwargs)

    monkeypatch.setattr(base, "parse", recording)
    return seen


def _context() -> dict[str, Any]:
    ti = SimpleNamespace(dag_id="checker", task_id="retrieve", run_id="run-1", map_index=-1)
    return {"ti": ti, "run_id": "run-1"}


@pytest.mark.parametrize("vendor", ["connectsafely", "linkup"])
def test_the_checker_judges_real_answers_and_their_variants_as_the_models_do(
    vendor, answers, inbox_sandbox, tmp_path
):
    from airflow_provider_linkmsg.operators.connectsafely import ConnectSafelyRetrieveMessagesOperator
    from airflow_provider_linkmsg.operators.linkup import LinkupRetrieveMessagesOperator

    inbox_sandbox(vendor, conversations=4, messages=6)
    operator = {
        "connectsafely": ConnectSafelyRetrieveMessagesOperator,
        "linkup": LinkupRetrieveMessagesOperator,
    }
    operator[vendor](task_id="retrieve", staging_path=str(tmp_path), max_workers=1).execute(_context())
    _judged_alike(answers, minimum=3)


def test_the_checker_judges_linkedapi_answers_and_their_variants_as_the_models_do(
    answers, linkedapi_world, linkedapi_context, tmp_path
):
    from airflow_provider_linkmsg.operators.linkedapi import (
        LinkedApiRetrieveMessagesOperator,
        LinkedApiSyncConversationsOperator,
    )

    world = linkedapi_world("seed", persons=3, not_found=0)
    LinkedApiSyncConversationsOperator(
        task_id="sync",
        persons=world.persons(),
        staging_path=str(tmp_path),
        poll_interval=0.05,
        timeout=30,
        deferrable=False,
    ).execute(linkedapi_context("sync"))
    LinkedApiRetrieveMessagesOperator(
        task_id="retrieve", persons=world.persons(), staging_path=str(tmp_path)
    ).execute(linkedapi_context("retrieve"))
    _judged_alike(answers, minimum=1)


def _judged_alike(answers: list[tuple[type[BaseModel], Any]], *, minimum: int) -> None:
    checked = [(model, data) for model, data in answers if schemas._checker(model) is not None]
    assert len(checked) >= minimum, f"too few answers went through the checker: {answers}"
    variants = rejected = 0
    for model, data in checked:
        checker = schemas._checker(model)
        assert _accepts(checker.validate_python, data) and _accepts(model.model_validate, data)
        for variant in _variants(data):
            by_model = _accepts(model.model_validate, variant)
            assert _accepts(checker.validate_python, variant) == by_model, (model, variant)
            variants += 1
            rejected += not by_model
    assert rejected > 0 and variants > rejected  # both sides of the judgement were met


def test_the_models_config_applies_to_every_field_and_other_models_are_left_to_pydantic():
    from pydantic import ConfigDict, model_validator

    class Inner(BaseModel):
        model_config = ConfigDict(strict=True, extra="allow")
        n: int  # strict only through the config

    class Outer(BaseModel):
        model_config = ConfigDict(strict=True, extra="allow")
        inner: list[Inner]
        flag: bool | None = None

    checker = schemas._checker(Outer)
    assert checker is not None
    for data in (
        {"inner": [{"n": 1}]},
        {"inner": [{"n": "1"}]},
        {"inner": [{"n": 1.0}]},
        {"inner": [], "flag": 1},
    ):
        assert _accepts(checker.validate_python, data) == _accepts(Outer.model_validate, data), data

    class Checked(BaseModel):
        n: int

        @model_validator(mode="after")
        def _positive(self):
            if self.n < 1:
                raise ValueError("n must be positive")
            return self

    class Forbidding(BaseModel):
        model_config = ConfigDict(extra="forbid")
        n: int

    class Mixed(BaseModel):  # nested models of other configs
        model_config = ConfigDict(strict=True)
        inner: Forbidding | None = None
        lax: Inner | None = None

    assert schemas._checker(Checked) is None and schemas._checker(Forbidding) is None
    assert schemas._checker(Mixed) is None
