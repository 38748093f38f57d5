"""CRLF injection helpers: what the lines after a break reveal, by location tier."""

from __future__ import annotations

import pytest

from apishield.checks.crlf import body_line_kind, head_line_kind


@pytest.mark.parametrize(
    ("lines", "kind"),
    [
        (["6566", "CHECKPOINT: user bob"], "log forging"),
        (["x", "2024-03-01 12:00:01 INFO ok"], "log forging"),
        (["", "Set-Cookie: a=b"], "header injection"),
        (["some words", "X-Forwarded-For: 1.2.3.4"], "header injection"),
        (["token", "Anything: goes"], "header injection"),
        (["test", "next=more"], "parameter injection"),
        (["", "HTTP/1.1 200 OK"], "response splitting"),
        (["", "GET / HTTP/1.1"], "request smuggling"),
        (["", "EHLO example.com"], "mail command injection"),
        (["x", "", "<html>"], "response body injection"),
        (["some words", "Note: later"], ""),
        (["有两个选项", "1. 吃饭"], ""),
        (["line one", "line two"], ""),
    ],
)
def test_head_line_kind(lines: list[str], kind: str) -> None:
    assert head_line_kind(lines, strict=False) == kind


def test_head_line_kind_strict_takes_generic_lines_after_prose() -> None:
    assert head_line_kind(["some words", "Note: later"], strict=True) == "header injection"


@pytest.mark.parametrize(
    ("lines", "kind"),
    [
        (["bob", "Set-Cookie: sid=1; Path=/"], "header injection"),
        (["", "Content-Length: 0"], "header injection"),
        (["aaa", "GET / HTTP/1.1"], "request smuggling"),
        (["xGET /a HTTP/1.1", "Host: example.com"], "embedded HTTP request"),
        (["", "location: Berlin"], ""),
        (["", "host: localhost"], ""),
        (["Fix", "", "Signed-off-by: Jane <jane@example.com>"], ""),
        (["The server said:", "HTTP/1.1 500 Error"], ""),
        (["Hi,", "ERROR: crashed"], ""),
        (["en=page_view", "en=scroll"], ""),
    ],
)
def test_body_line_kind(lines: list[str], kind: str) -> None:
    assert body_line_kind(lines, strict=False) == kind


def test_body_line_kind_strict_takes_log_records_after_a_token() -> None:
    assert body_line_kind(["bob", "INFO: admin logged in"], strict=True) == "log forging"
