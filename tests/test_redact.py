"""Secrets never reach events: sensitive locations and recognisable secrets are masked."""

from __future__ import annotations

import pytest

from apishield.findings import Finding, Location, Source
from apishield.redact import mask_text

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"token {JWT} here", "token [masked] here"),
        ("Authorization: Bearer abcdefghijklmnop123", "Authorization: [masked]"),
        ("key AKIAIOSFODNN7EXAMPLE used", "key [masked] used"),
        ("card 4111 1111 1111 1111 ok", "card [masked] ok"),
        ("order 4111 1111 1111 1112 ok", "order 4111 1111 1111 1112 ok"),  # fails Luhn
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----", "[masked]"),
        ("1' OR '1'='1", "1' OR '1'='1"),
    ],
)
def test_recognisable_secrets_are_masked(text: str, expected: str) -> None:
    assert mask_text(text) == expected


def test_evidence_under_a_sensitive_name_is_masked_whole() -> None:
    finding = Finding(
        check="sqli",
        category="injection",
        location=Location(Source.JSON, "/user/password"),
        message="SQL injection: tautology `hunter2' OR 1=1`",
        evidence="hunter2' OR 1=1",
    )
    document = finding.to_json()
    assert document["evidence"] == "[masked: 15 characters]"
    assert "hunter2" not in document["message"]
    assert document["location"] == {"source": "json", "name": "/user/password"}


def test_ordinary_evidence_is_kept() -> None:
    finding = Finding("xss", "injection", Location(Source.QUERY, "q"), "XSS", "<script>")
    assert finding.to_json()["evidence"] == "<script>"
