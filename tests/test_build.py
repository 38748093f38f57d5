"""The compiled build: what runs for every request is compiled, not interpreted."""

from __future__ import annotations

import types

import pytest

import apishield
from apishield.adapters.proxy import _Exchange
from apishield.adapters.upstream import _Request
from apishield.engine import Transaction
from apishield.events import SecurityEvent
from apishield.findings import Finding, Location, Verdict
from apishield.http import Headers, Request, Response
from apishield.inputs import InputValue

BUILT_PER_REQUEST = [
    Transaction,
    SecurityEvent,
    Finding,
    Location,
    Verdict,
    Headers,
    Request,
    Response,
    InputValue,
    _Exchange,
    _Request,
]


@pytest.mark.skipif(not apishield.COMPILED, reason="a plain-Python build")
@pytest.mark.parametrize("cls", BUILT_PER_REQUEST, ids=lambda cls: cls.__name__)
def test_classes_built_per_request_have_a_compiled_init(cls: type) -> None:
    # mypyc compiles a class, but a dataclass's generated __init__ stays Python
    # (SecurityEvent's cost 6,500 instructions per request): write it out instead
    assert not isinstance(cls.__init__, types.FunctionType)
