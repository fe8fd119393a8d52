"""The validation layer: values as templates render them, refused or normalized before any call."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from airflow_provider_linkmsg.exceptions import LinkMsgValidationError
from airflow_provider_linkmsg.validation import (
    check_bool,
    check_generation_request,
    check_inbox_arguments,
    check_iso_date,
    check_number,
    parse_literal,
)


@pytest.mark.parametrize(
    ("text", "expected"), [("true", True), ("False", False), (" TRUE\n", True), (True, True)]
)
def test_booleans_from_templated_text(text, expected):
    assert check_bool(text, field="full_refresh") is expected


@pytest.mark.parametrize("text", ["", "no", "0", "1", "yes", None, 1])
def test_anything_else_is_not_a_boolean(text):
    with pytest.raises(LinkMsgValidationError) as info:
        check_bool(text, field="full_refresh")
    assert info.value.field == "full_refresh"


def test_full_refresh_false_as_text_is_false():
    operator = SimpleNamespace(
        vendor="linkup",
        full_refresh="false",
        include_raw="True",
        fail_on_error=True,
        overlap_seconds="60",
        max_workers="4",
        page_size=None,
        conversation_ids=None,
    )
    check_inbox_arguments(operator)
    assert operator.full_refresh is False and operator.include_raw is True
    assert operator.overlap_seconds == 60 and operator.max_workers == 4


@pytest.mark.parametrize(
    "value", [math.nan, math.inf, -math.inf, "nan", "inf", 1e300, "1e400", True, "", [], "5x"]
)
def test_numbers_must_be_finite_and_in_range(value):
    with pytest.raises(LinkMsgValidationError) as info:
        check_number(value, field="overlap_seconds", minimum=0, maximum=1e6)
    assert info.value.field == "overlap_seconds"


def test_numbers_from_text_keep_their_kind():
    assert check_number("50", field="page_size", integer=True) == 50
    assert check_number("2.5", field="x") == 2.5
    assert check_number(4.0, field="x", integer=True) == 4
    with pytest.raises(LinkMsgValidationError, match="whole number"):
        check_number(2.5, field="batch_size", integer=True)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("[1, 2]", [1, 2]), ("['a', None]", ["a", None]), ('{"a": 1}', {"a": 1}), ("plain", "plain"), (3, 3)],
)
def test_one_parser_for_rendered_literals(text, expected):
    assert parse_literal(text, field="leads") == expected


@pytest.mark.parametrize("text", ["[{bad python", "[not json", "{'a': }", "[" * 5000, "[__import__('os')]"])
def test_unparsable_literals_are_validation_errors(text):
    with pytest.raises(LinkMsgValidationError) as info:
        parse_literal(text, field="manifests")
    assert info.value.field == "manifests"


@pytest.mark.parametrize("text", ["20260101", "2026-13-01", "2026-1-1", "2026-01-01T00:00", "yesterday"])
def test_dates_in_iso_form_only(text):
    with pytest.raises(LinkMsgValidationError):
        check_iso_date(text, field="partition_date")
    assert check_iso_date("2026-01-31", field="partition_date") == "2026-01-31"


def test_a_generation_with_integer_ids_and_a_budget_passes():
    leads = [
        {"external_prospect_id": i, "first_name": "A", "linkedin": f"https://www.linkedin.com/in/a{i}"}
        for i in range(3)
    ]
    payload = {"lead_data": leads, "message_sequence": [{"step": 1}]}
    assert check_generation_request(payload, "10") == 10
    assert check_generation_request(payload, None) is None
