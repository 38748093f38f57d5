"""The SQL injection check's break-out analysis: what follows a value's first quote."""

from __future__ import annotations

import pytest

from apishield.checks.sqli import break_out


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("x';SELECT * FROM t limit 5--", "stacked query"),
        ("a@b.example';", "query termination"),
        ("a@b.example'/* c */;", "query termination"),
        ("a' and f(x));'\n", "query termination"),
        ("x'|col--", "comment truncation"),
        ("x' or col notnull--", "comment truncation"),
        ("1' and g(secret) and 'yes", "quote-balanced condition"),
        ("u' or 'k' <", "tautology"),
        ("'union all select 1", "UNION query"),
        ("'select h", "injected SELECT"),
        ("' where substring((select pwd from t),1,1)='a", "subquery condition"),
        ("' where id = (select max(id) from t)", "subquery condition"),
        ("' or (exists)", "subquery condition"),
        ("' and not exists(select 1)", "subquery condition"),
        ("' or id in (select id from t)", "subquery condition"),
    ],
)
def test_break_out_continues_the_query(text: str, kind: str) -> None:
    found = break_out(text)
    assert found is not None
    assert found[0] == kind
    assert found[1] in text


@pytest.mark.parametrize(
    "text",
    [
        "O'Brien",
        "I'll be there -- maybe",
        "is this your parents' or yours?",
        "the dogs' and the cats' bowls",
        "Click 'select all' to continue",
        "'Where (select one)' is the first question",
        "'where' and 'when' (select one)",
        "is it real' or exists at all",
        "He said 'hi'; then left",
        "const s = 'a';",
        'str.split("\';")',
        "parents' or kids -- whatever",
        "'; foo",
    ],
)
def test_break_out_leaves_prose_and_code_alone(text: str) -> None:
    assert break_out(text) is None
