"""The request and response values adapters hand to the engine."""

from __future__ import annotations

import dataclasses

from apishield.http import Headers, Request, Response


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
