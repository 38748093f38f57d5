"""NoSQL check: operator uses with the field they apply to, and their judgement."""

from __future__ import annotations

import pytest

from apishield.checks.nosql import NoSqlInjection, judge_operator, operator_uses
from apishield.findings import Location, Source
from apishield.inputs import InputValue
from apishield.policy import CheckSettings, policy_from_dict


def _value(text: str, source: Source = Source.JSON_KEY, name: str = "") -> InputValue:
    return InputValue(Location(source, name), text, text)


def _check(sensitivity: str = "balanced") -> NoSqlInjection:
    return NoSqlInjection(CheckSettings(), policy_from_dict({"sensitivity": sensitivity}))


@pytest.mark.parametrize(
    ("value", "uses"),
    [
        (_value("$ne", name="/password/$ne"), [("password", "ne", "$ne")]),
        (_value("$gt", name="/login/0/$gt"), [("login", "gt", "$gt")]),
        (_value("$ne", name="/$ne"), [("", "ne", "$ne")]),
        (_value("$ref", name="/a/$ref"), []),
        (_value("$ne", Source.JSON, "/password"), []),
        (
            _value("user[$regex]", Source.QUERY_KEY, "user[$regex]"),
            [("user", "regex", "user[$regex]")],
        ),
        (
            _value('{"pass": {"$in": ["a"]}}', Source.QUERY, "where"),
            [("pass", "in", '"pass": {"$in":')],
        ),
    ],
)
def test_operator_uses_find_the_field(value: InputValue, uses: list[tuple[str, str, str]]) -> None:
    assert operator_uses(value) == uses


@pytest.mark.parametrize(
    ("field", "operator", "score"),
    [
        ("", "where", 95),
        ("price", "function", 95),
        ("", "lookup", 85),
        ("", "expr", 80),
        ("password", "ne", 90),
        ("user_password", "regex", 90),
        ("userName", "gt", 90),
        ("e-mail", "exists", 90),
        ("price", "gt", 60),
        ("", "ne", 60),
        ("passport_no", "ne", 60),
    ],
)
def test_judge_operator(field: str, operator: str, score: int) -> None:
    judged = judge_operator(field, operator)
    assert judged is not None and judged[1] == score


def test_json_operator_key_on_a_credential_blocks() -> None:
    finding = _check().check_value(_value("$ne", name="/password/$ne"))
    assert finding is not None and finding.score == 90
    assert "credential field 'password'" in finding.message


def test_filter_operators_on_other_fields_only_at_strict() -> None:
    value = _value("$gt", name="/filter/price/$gt")
    assert _check().check_value(value) is None
    strict = _check("strict").check_value(value)
    assert strict is not None and strict.score == 60
