"""PHP readings: built callees, variable functions, function calls."""

from __future__ import annotations

import random
import re

import pytest

from apishield.checks.php import (
    _COMMENT,
    _FUNCTIONS,
    function_calls,
    judge_built_callee,
    judge_calls,
    judge_variable_call,
)


@pytest.mark.parametrize(
    "text",
    [
        "(system)('id')",
        "(sy.(st).em)('id')",
        '"sys"."t"."em"(\'id\')',
        "(  [ system ][ 0 ]) {/* c */0} ( ls )",
        "define('x', 'sys' . 'tem');(x)('id');",
        "$y = 'sys'.'tem';($y)('id');",
        'return"passthru"(x)',
    ],
)
def test_built_callee_resolves_to_a_dangerous_function(text: str) -> None:
    judged = judge_built_callee(text)
    assert judged is not None and not judged[2]


@pytest.mark.parametrize(
    "text", ["(function(){ return 1; })()", "('a'.'b')('c')", "f(x)(y)", "[1][0](2)"]
)
def test_built_callee_ignores_other_expressions(text: str) -> None:
    assert judge_built_callee(text) is None


@pytest.mark.parametrize(
    ("text", "strict"),
    [
        ("$a(1)", True),
        ("$t('key')", True),
        ("@$a(1)", False),
        ("$$a(1)", False),
        ("$__(1)", False),
        ("$a['x'](1)", False),
        ("$a /* c */ (1)", False),
        ("$o->$m()", False),
        ("${'a'}(1)", False),
        ("x.$a(1)", False),
        ("A::$a(1)", False),
        ("$a($b) .$c", False),
        ("$a($b) . $c", True),
        ("$a($b\n) \t.$c", False),
        ("$a($b) .x", True),
    ],
)
def test_variable_calls(text: str, strict: bool) -> None:
    judged = judge_variable_call(text)
    assert judged is not None and judged[2] is strict


def test_a_silenced_call_is_evidence_with_its_at_sign() -> None:
    assert judge_variable_call("x=1; @$f($_GET[0]);") == ("variable function call", "@$f(", False)


def test_variable_call_needs_a_name() -> None:
    assert judge_variable_call("$('#id').hide()") is None
    assert judge_variable_call("$$ P(A)") is None


@pytest.mark.parametrize(
    ("text", "strict"),
    [
        ("system('id')", False),
        ("system(whoami)", False),
        ("base64_decode()", False),
        ("exec/*c*/()", False),
        ("substr($x, 1)", True),
        ("exec(blah)", True),
    ],
)
def test_function_calls(text: str, strict: bool) -> None:
    judged = judge_calls(text)
    assert judged is not None and judged[2] is strict


@pytest.mark.parametrize("text", ["Run the system (it is fast)", "the file (attached)", "exec (x)"])
def test_prose_is_no_call(text: str) -> None:
    assert judge_calls(text) is None


def _calls_by_alternation(text: str) -> list[tuple[int, int]]:
    """The spans the one-alternative-per-function pattern finds (the reference)."""
    words = "|".join(sorted(_FUNCTIONS, key=len, reverse=True))
    pattern = re.compile(rf"\b({words})({_COMMENT}*)\(", re.IGNORECASE | re.DOTALL)
    return [m.span() for m in pattern.finditer(text)]


@pytest.mark.parametrize(
    "text",
    [
        "system('id')",
        "SyStEm ('id'); Exec /* c */ ('ls'); passthru # c\n('x')",
        "foo /* system( */ ( bar )",
        "xsystem('id') system2('id') $system('id') ->system('id')",
        "the file (attached) and the copy (signed) ; mail(to, subject)",
        "system\n(\n'id'\n)",
        "eval(eval(eval('1')))",
        "",
        "(((",
    ],
)
def test_function_calls_finds_what_one_alternative_per_function_finds(text: str) -> None:
    assert [m.span() for m in function_calls(text)] == _calls_by_alternation(text)


def test_function_calls_agrees_with_the_alternation_on_random_code() -> None:
    rng = random.Random(7)
    pieces = [*sorted(_FUNCTIONS)[:40], "foo", "x", " ", "(", ")", "/*", "*/", "#", "\n", "'", "$"]
    for _ in range(2000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randrange(1, 25)))
        assert [m.span() for m in function_calls(text)] == _calls_by_alternation(text), text
