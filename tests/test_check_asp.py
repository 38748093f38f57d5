"""Classic ASP / VBScript check: string pieces joined before the calls are read."""

from __future__ import annotations

import time

import pytest

from apishield.checks.asp import AspInjection
from apishield.findings import Location, Source
from apishield.inputs import InputValue
from apishield.policy import CheckSettings, policy_from_dict


def _check(text: str) -> str | None:
    check = AspInjection(CheckSettings(), policy_from_dict({}))
    finding = check.check_value(InputValue(Location(Source.JSON, "p"), text, text))
    return None if finding is None else finding.message


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('<%execute(request("c"))%>', "execution of a request value"),
        ('Eval("Ex"&"e"&"cute(""On Error Resume Next"")")', "execution of VBScript code"),
        ('Eval("Ex"&"e"&"cute(x)")', "call spelled from string pieces"),
        ('"Create" & "Object(""Shell.Application"")"', "COM object"),
    ],
)
def test_found(text: str, kind: str) -> None:
    message = _check(text)
    assert message is not None and kind in message


@pytest.mark.parametrize(
    "text",
    [
        '"Ex"&"ecute" is what the macro calls it',  # spelled, but not called
        'Execute "npm install", then eval("1+1") in the console',
        'rs = command.Execute("SELECT 1")',
    ],
)
def test_not_found(text: str) -> None:
    assert _check(text) is None


def test_hostile_value_is_linear() -> None:
    text = 'Execute("' + '"&"' * 10_000
    started = time.perf_counter()
    _check(text)
    assert time.perf_counter() - started < 0.5
