"""The request and response values adapters hand to the engine."""

from __future__ import annotations

import dataclasses

from apishield import http
from apishield.http import Headers, Request, Response, lower_name


def test_with_body_keeps_every_other_field() -> None:
    request = Request(
        "POST",
        "/a%20b",
        "q=1",
        Headers([("content-type", "application/json")]),
        b"{}",
        "10.0.0.1",
        "https",
        "1.0",
    )
    assert request.with_body(b"[1]") == dataclasses.replace(request, body=b"[1]")
    response = Response(201, Headers([("x", "y")]), b"old")
    assert response.with_body(b"new") == dataclasses.replace(response, body=b"new")


def test_headers_are_a_case_insensitive_multi_map_in_arrival_order() -> None:
    headers = Headers(
        [("X-Forwarded-For", "10.0.0.1"), ("Host", "a"), ("x-forwarded-for", "10.0.0.2")]
    )
    assert headers.get("x-forwarded-for") == "10.0.0.1"  # the first one
    assert headers.get("HOST") == "a"
    assert headers.get("missing") is None and headers.get("missing", "d") == "d"
    assert headers.get_all("X-FORWARDED-FOR") == ["10.0.0.1", "10.0.0.2"]
    assert headers.get_all("missing") == []
    assert "host" in headers and "Host" in headers and "nope" not in headers
    assert 1 not in headers
    assert list(headers)[2] == ("x-forwarded-for", "10.0.0.2")  # names as received
    assert Headers([("A", "")]).get("a") == ""  # an empty value is a value


def test_lower_case_names_are_remembered_and_stay_bounded() -> None:
    first = lower_name("X-Request-ID")
    assert first == "x-request-id" and lower_name("X-Request-ID") is first
    for index in range(2000):  # invented names fill it: it starts over
        assert lower_name(f"X-N{index}") == f"x-n{index}"
    assert len(http._LOWER_NAMES) <= http._MAX_LOWER_NAMES
    long_name = "X-" + "N" * 100
    assert lower_name(long_name) == long_name.lower() and long_name not in http._LOWER_NAMES
    assert lower_name("X-Request-ID") == "x-request-id"
