"""Template injection helpers: tokenising expressions, reaching dunders, judging tokens."""

from __future__ import annotations

import pytest

from apishield.checks.ssti import accessed_dunders, expression_kind, expressions, tokenize


def test_tokenize_keeps_strings_names_numbers_and_operators() -> None:
    tokens = tokenize("''.__class__['x'] * 2")
    assert [(t.kind, t.text) for t in tokens] == [
        ("string", "''"),
        ("op", "."),
        ("name", "__class__"),
        ("op", "["),
        ("string", "'x'"),
        ("op", "]"),
        ("op", "*"),
        ("number", "2"),
    ]


@pytest.mark.parametrize(
    ("expression", "dunders"),
    [
        ("''.__class__.__mro__", ["class", "mro"]),
        ("x|attr('__globals__')", ["globals"]),
        ("x['\\x5f\\x5fclass\\x5f\\x5f']", ["class"]),
        ("x['_'*2~'class'~'_'*2]", ["class"]),
        ("(('_','_','init','_','_')|join)", ["init"]),
        ("user.name ~ '_' ~ 'x'", []),
        ("'__TS__'", []),
    ],
)
def test_accessed_dunders_sees_through_spelling(expression: str, dunders: list[str]) -> None:
    assert [d for d in accessed_dunders(tokenize(expression)) if d != "TS"] == dunders


@pytest.mark.parametrize(
    ("expression", "kind"),
    [
        (" lipsum.__globals__.os ", "Python object walk"),
        ("request|attr(request.args.a)", "attribute name from request data"),
        ("config.items()", "template global leak"),
        ("x.getClass().forName('java.lang.Runtime')", "runtime access"),
        ("system('id')", "code execution call"),
        ("os.system('id')", "code execution call"),
        ("range.constructor('return 1')()", "constructor gadget"),
        ("['id']|filter('system')", "callback filter"),
        (" user.first_name ", ""),
        (" url_for(request.endpoint) ", ""),
        ("/a(b)/.exec(s)[1]", ""),
        (" items ", ""),
    ],
)
def test_expression_kind(expression: str, kind: str) -> None:
    assert expression_kind(expression) == kind


def test_expressions_sees_overlapping_and_unclosed_forms() -> None:
    found = [m.group(0) for m in expressions("a ${{7*7}} b {{x.__class__")]
    assert found == ["${{7*7}", "{{7*7}}", "{{x.__class__"]
    assert [m.group(0) for m in expressions("{{a}} {{b}}", 3)] == ["{{b}}"]
    assert list(expressions("{{\x01__class__}}")) == []  # binary data is no template
