"""session_fixation: session id parameters planted by another site."""

from __future__ import annotations

import functools
import gzip

import pytest

from apishield.checks.session import referer_host, same_site
from apishield.engine import Engine
from apishield.http import Headers, Request
from apishield.policy import policy_from_dict


@functools.cache
def _engine(sensitivity: str) -> Engine:
    return Engine(policy_from_dict({"sensitivity": sensitivity}))


def _checks(request: Request, sensitivity: str = "balanced") -> set[str]:
    return {f.check for f in _engine(sensitivity).inspect(request).findings}


def _get(query: str, **headers: str) -> Request:
    items = [("Host", "shop.example.com"), *((k.replace("_", "-"), v) for k, v in headers.items())]
    return Request("GET", "/login", query=query, headers=Headers(items))


@pytest.mark.parametrize("name", ["PHPSESSID", "jsessionid", "laravel_session", "connect.sid"])
def test_framework_session_name_from_another_site(name: str) -> None:
    request = _get(f"{name}=abc123", Referer="https://evil.example/page")
    assert "session_fixation" in _checks(request)


def test_json_key_from_another_site() -> None:
    request = Request(
        "POST",
        "/login",
        headers=Headers(
            [
                ("Host", "shop.example.com"),
                ("Referer", "http://evil.example/"),
                ("Content-Type", "application/json"),
            ]
        ),
        body=b'{"phpsessid": "abc"}',
    )
    assert "session_fixation" in _checks(request)


def test_json_key_in_a_gzip_body_from_another_site() -> None:
    headers = [
        ("Host", "shop.example.com"),
        ("Referer", "http://evil.example/"),
        ("Content-Type", "application/json"),
        ("Content-Encoding", "gzip"),
    ]
    body = gzip.compress(b'{"phpsessid": "abc"}')
    request = Request("POST", "/login", headers=Headers(headers), body=body)
    assert "session_fixation" in _checks(request)


@pytest.mark.parametrize(
    "request_",
    [
        _get("PHPSESSID=abc123", Referer="https://shop.example.com/cart"),
        _get("PHPSESSID=abc123", Referer="https://www.shop.example.com/"),
        _get("PHPSESSID=abc123", Referer="https://evil.example/", X_Forwarded_Host="evil.example"),
        _get("PHPSESSID=abc123"),
        _get("session_id=cs_test_123", Referer="https://checkout.stripe.com/"),
        _get("q=PHPSESSID", Referer="https://evil.example/"),
    ],
)
def test_same_site_no_referer_and_generic_names_pass_at_balanced(request_: Request) -> None:
    assert "session_fixation" not in _checks(request_)


def test_strict_counts_generic_names_and_missing_referer() -> None:
    stripe = _get("session_id=cs_test_123", Referer="https://checkout.stripe.com/")
    assert "session_fixation" in _checks(stripe, "strict")
    assert "session_fixation" in _checks(_get("jsessionid=abc"), "strict")
    assert "session_fixation" not in _checks(_get("inside=1"), "strict")


@pytest.mark.parametrize(
    ("referer", "host"),
    [
        ("https://user:pw@Evil.Example:8443/x?y", "evil.example"),
        ("http://[2001:db8::1]:80/", "[2001:db8::1]"),
        ("https://a.b.example/", "a.b.example"),
        ("not a url", ""),
        ("http", ""),
    ],
)
def test_referer_host(referer: str, host: str) -> None:
    assert referer_host(referer) == host


def test_same_site() -> None:
    assert same_site("example.com", "example.com:8080")
    assert same_site("api.example.com", "example.com")
    assert same_site("example.com", "www.example.com")
    assert not same_site("attacker.example.com", "app.example.com")
    assert not same_site("localhost.attacker.example", "localhost")


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("JSESS%49ONID=abc", b""),
        ("", b'{"\\u0070hpsessid": "abc"}'),
        ("", b'{"&#112;hpsessid": "abc"}'),
        ("", b'{"user": {"connect.sid": "x"}}'),
    ],
)
def test_encoded_and_nested_session_names_from_another_site(query: str, body: bytes) -> None:
    headers = [
        ("Host", "shop.example.com"),
        ("Referer", "http://evil.example/"),
        ("Content-Type", "application/json"),
    ]
    request = Request("POST", "/login", query=query, headers=Headers(headers), body=body)
    assert "session_fixation" in _checks(request)
