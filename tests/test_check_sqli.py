"""The SQL injection check's break-out analysis: what follows a value's first quote."""

from __future__ import annotations

import ctypes
import random

import libinjection
import pytest

from apishield.checks import sqli
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


_SQL_PIECES = (
    "'",
    '"',
    "`",
    " ",
    "1",
    "=",
    "or",
    "and",
    "union",
    "select",
    "--",
    "#",
    "/*",
    "*/",
    ";",
    "(",
    ")",
    "id",
    "from",
    "users",
    "sleep(5)",
    "0x41",
    "@@version",
    "é",
    "\u2019",
    "\x00",
    "like",
    "null",
    "||",
    "admin",
    "+",
    ",",
    "Mozilla/5.0 (X11; like Gecko)",
)


def test_bare_libinjection_call_agrees_with_the_binding() -> None:
    """The direct C call gives libinjection's verdict on every kind of text."""
    rng = random.Random(7)
    flagged = 0
    for _ in range(20_000):
        text = "".join(rng.choice(_SQL_PIECES) for _ in range(rng.randint(1, 12)))
        expected = bool(libinjection.is_sql_injection(text)["is_sqli"])
        assert sqli._reads_as_sqli(text) is expected, text
        flagged += expected
    assert 1_000 < flagged < 19_000  # both verdicts were exercised


def test_bare_libinjection_call_is_found() -> None:
    assert sqli._libinjection_sqli() is not None


def test_a_library_without_the_c_function_falls_back_to_the_binding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(name: str) -> None:
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "PyDLL", missing)
    assert sqli._libinjection_sqli() is None
