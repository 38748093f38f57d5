"""Generic injection check: prototype pollution, ORM lookups, base64-wrapped payloads."""

from __future__ import annotations

import base64

import pytest

from apishield.checks.generic import GenericInjection, orm_lookup, prototype_pollution
from apishield.findings import Location, Source
from apishield.inputs import InputValue
from apishield.normalize import canonical
from apishield.policy import CheckSettings, policy_from_dict


def _value(text: str, source: Source = Source.QUERY, name: str = "p") -> InputValue:
    return InputValue(Location(source, name), text, canonical(text))


def _check(sensitivity: str = "balanced") -> GenericInjection:
    return GenericInjection(CheckSettings(), policy_from_dict({"sensitivity": sensitivity}))


@pytest.mark.parametrize(
    ("value", "score"),
    [
        (_value("__proto__", Source.JSON_KEY, "/a/__proto__"), 90),
        (_value("prototype", Source.JSON_KEY, "/x/constructor/prototype"), 90),
        (_value("prototype", Source.JSON_KEY, "/x/prototype"), None),
        (_value("__proto__[x]", Source.QUERY_KEY), 90),
        (_value("__proto__.x=1", Source.COOKIE), 90),
        (_value("a=1&constructor[prototype][x]=1"), 90),
        (_value("{'__proto__': {}}"), 90),
        (_value("obj['__proto__'] = evil"), 90),
        (_value("a.__proto__.b = 1"), 90),
        (_value("a.__proto__.b == 1"), 60),
        (_value("see obj.__proto__ docs"), 60),
    ],
)
def test_prototype_pollution(value: InputValue, score: int | None) -> None:
    judged = prototype_pollution(value)
    assert (judged[2] if judged else None) == score


@pytest.mark.parametrize(
    ("key", "score"),
    [
        ("user__password__startswith", 85),
        ("password_hash__regex", 85),
        ("a__b__c__d__name__contains", 75),
        ("user__profile__icontains", 60),
        ("user__profile__gte", None),
        ("price__gte", None),
        ("name__icontains", None),
        ("filter[user__password__in]", 85),
    ],
)
def test_orm_lookup(key: str, score: int | None) -> None:
    judged = orm_lookup(key)
    assert (judged[2] if judged else None) == score


@pytest.mark.parametrize(
    "payload",
    [
        "_$$ND_FUNC$$_function(){}",
        'x={"a":"_$$ND_FUNC$$_function(){}()"}',
        "require('child_process').exec('id')",
        "1;while(true);",
        '{"__proto__": {"admin": true}}',
    ],
)
@pytest.mark.parametrize("pad", ["", "x", "xy"])
def test_base64_wrapped_payloads_at_every_alignment(payload: str, pad: str) -> None:
    encoded = base64.b64encode((pad + payload).encode()).decode()
    finding = _check().check_value(_value(encoded, Source.COOKIE))
    assert finding is not None and finding.message.startswith("Code injection: base64-encoded")


def test_base64_of_escaped_payload() -> None:
    encoded = base64.b64encode(b"\\u0077\\u0068ile(1);").decode()
    finding = _check().check_value(_value(encoded, Source.COOKIE))
    assert finding is not None and "infinite loop" in finding.message


def test_base64_of_benign_text_passes() -> None:
    text = base64.b64encode(b"while you wait, require(nothing) special").decode()
    assert _check().check_value(_value(text, Source.COOKIE)) is None


def test_php_in_data_uri_is_decoded() -> None:
    php = base64.b64encode(b"<?php system($_GET['c']); ?>").decode()
    finding = _check().check_value(_value(f"data:text/plain;base64,{php}"))
    assert finding is not None and "PHP code in a data: URI" in finding.message
    image = base64.b64encode(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR").decode()
    assert _check("strict").check_value(_value(f"data:image/png;base64,{image}")) is None


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("do{var b=new Date();}while(b-a<20000);", True),
        ("while(+new Date-s<5e3);", True),
        ("while (Date.now() < deadline) {}", True),
        ("while (Date.now() < deadline) { tick(); }", False),
        ("while (n < 10);", False),
        ("do { b = next(); } while (b)", False),
    ],
)
def test_busy_wait(text: str, found: bool) -> None:
    finding = _check().check_value(_value(text, Source.JSON))
    assert (finding is not None and "busy-wait" in finding.message) is found


def test_base64_of_busy_wait() -> None:
    encoded = base64.b64encode(b"while(Date.now()-t<5000);").decode()
    finding = _check().check_value(_value(encoded, Source.COOKIE))
    assert finding is not None and "busy-wait" in finding.message
