"""SSRF check: host parsing and judgement, URL extraction, location context."""

from __future__ import annotations

import ipaddress

import pytest

from apishield.checks.ssrf import ServerSideRequestForgery, judge_host, parse_ipv4, targets
from apishield.findings import Location, Source
from apishield.inputs import InputValue
from apishield.normalize import canonical
from apishield.policy import CheckSettings, policy_from_dict


@pytest.mark.parametrize(
    ("host", "address", "obfuscated"),
    [
        ("127.0.0.1", "127.0.0.1", False),
        ("2130706433", "127.0.0.1", True),
        ("0x7f000001", "127.0.0.1", True),
        ("0177.0.0.1", "127.0.0.1", True),
        ("127.1", "127.0.0.1", True),
        ("169.254.43518", "169.254.169.254", True),
        ("169.16689662", "169.254.169.254", True),
        ("0xA9.0xFE.0xA9.0xFE", "169.254.169.254", True),
        ("0251.00376.000251.0000376", "169.254.169.254", True),
        ("7147006462", "169.254.169.254", True),  # 2**32 + 2852039166, truncated
        ("0x41414141A9FEA9FE", "169.254.169.254", True),
        ("0", "0.0.0.0", True),
        ("8.8.8.8", "8.8.8.8", False),
    ],
)
def test_parse_ipv4_reads_every_inet_aton_form(host: str, address: str, obfuscated: bool) -> None:
    assert parse_ipv4(host) == (ipaddress.IPv4Address(address), obfuscated)


@pytest.mark.parametrize(
    "host", ["example.com", "1.2.3.4.5", "256.1.1.1", "1.bp.blog", "09.1.1.1", ""]
)
def test_parse_ipv4_rejects_names(host: str) -> None:
    assert parse_ipv4(host) is None


@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("169.254.169.254", "cloud metadata address"),
        ("100.100.100.200", "cloud metadata address"),
        ("fd00:ec2::254", "cloud metadata address"),
        ("metadata.google.internal", "cloud metadata host"),
        ("127.8.9.10", "loopback address"),
        ("::1", "loopback address"),
        ("localhost", "loopback address"),
        ("ip6-localhost", "loopback address"),
        ("10.1.2.3", "private address"),
        ("fe80::1%eth0", "link-local address"),
        ("::ffff:7f00:1", "loopback address"),
        ("::ffff:10.0.0.1", "private address"),
        ("2002:c0a8:101::", "private address"),  # 6to4 of 192.168.1.1
        ("100.64.1.1", "non-public address"),
        ("fc00::1", "non-public IPv6 address"),
        ("2001:db8::1", "non-public IPv6 address"),
        ("jenkins.internal", "internal host name"),
        ("api.default.svc", "internal host name"),
        ("nas.local", "internal host name"),
        ("x.localtest.me", "name resolving to loopback"),
        ("10.0.0.1.nip.io", "DNS name of a private address"),
        ("web-127-0-0-1.sslip.io", "DNS name of a loopback address"),
        ("c0a80001.nip.io", "DNS name of a private address"),
        ("a.b.rbndr.us", "DNS rebinding host"),
        ("::ffff:8.8.8.8", "IPv4 address in IPv6 form"),
        ("134744072", "obfuscated IP address"),
    ],
)
def test_judge_host(host: str, kind: str) -> None:
    target = judge_host(host)
    assert target is not None and target.kind == kind


@pytest.mark.parametrize(
    "host",
    ["example.com", "8.8.8.8", "2606:4700::1111", "8.8.8.8.nip.io", "localhost.example.com"],
)
def test_public_hosts_pass(host: str) -> None:
    assert judge_host(host) is None


def test_targets_read_hosts_the_way_lenient_parsers_do() -> None:
    hosts = [url.host for url in targets("http://a.example:80 &@b.example:80# @10.0.0.1:22/")]
    assert hosts == ["a.example", "b.example", "10.0.0.1"]
    assert [u.host for u in targets("http:0x7f000001")] == ["0x7f000001"]
    assert [u.host for u in targets(r"http://\l\o\c\a\l\h\o\s\t/")] == ["localhost"]
    assert [u.host for u in targets("http://user:pw@[::1]:8080/x")] == ["::1"]
    assert [u.host for u in targets("localhost:8080/admin")] == ["localhost"]
    assert list(targets("kubernetes/kubernetes")) == []
    assert list(targets("time:12:30")) == []


def _check(sensitivity: str = "balanced") -> ServerSideRequestForgery:
    return ServerSideRequestForgery(CheckSettings(), policy_from_dict({"sensitivity": sensitivity}))


def _value(text: str, source: Source = Source.QUERY, name: str = "url") -> InputValue:
    return InputValue(Location(source, name), text, canonical(text))


def test_normalised_forms_are_seen() -> None:
    finding = _check().check_value(
        _value("acap://%E2%91%A0%E2%91%A1%E2%91%A6.%E2%93%AA.%E2%93%AA.%E2%91%A0")
    )
    assert finding is not None and "loopback" in finding.message


def test_oauth_loopback_redirect_is_allowed() -> None:
    check = _check()
    assert check.check_value(_value("http://127.0.0.1:8085/", name="redirect_uri")) is None
    assert check.check_value(_value("http://localhost/cb", Source.JSON, "/redirect_uri")) is None
    assert check.check_value(_value("http://10.0.0.1/cb", name="redirect_uri")) is not None
    assert check.check_value(_value("http://127.0.0.1:8085/", name="webhook")) is not None


def test_prose_counts_only_at_strict() -> None:
    prose = _value("run it and open http://localhost:3000/ to see the page")
    assert _check().check_value(prose) is None
    finding = _check("strict").check_value(prose)
    assert finding is not None and finding.score == 60


def test_headers_count_only_metadata_and_smuggling_schemes() -> None:
    check = _check()
    assert check.check_value(_value("http://localhost:3000/", Source.HEADER, "referer")) is None
    assert check.check_value(_value("http://169.254.169.254/", Source.HEADER, "x-url")) is not None
    assert check.check_value(_value("gopher://example.com/_x", Source.HEADER, "x-url")) is not None


def test_finding_names_class_and_evidence() -> None:
    finding = _check().check_value(_value("http://0x7f000001/admin"))
    assert finding is not None
    assert finding.category == "ssrf"
    assert finding.owasp == "API7:2023 Server Side Request Forgery"
    assert finding.message == "Server-side request forgery: loopback address `http://0x7f000001`"


def test_server_configuration_fields_name_local_hosts_honestly() -> None:
    upstream = _value("http://127.0.0.1:8889", Source.JSON, "/upstreams/0")
    assert _check().check_value(upstream) is None
    assert _check("strict").check_value(upstream) is not None
    origins = _value("http://localhost:3000", Source.JSON, "/cors/allowed_origins/1")
    assert _check().check_value(origins) is None
    metadata = _value("http://169.254.169.254/", Source.JSON, "/upstreams/0")
    assert _check().check_value(metadata) is not None
    obfuscated = _value("http://0x7f000001/", Source.JSON, "/backend")
    assert _check().check_value(obfuscated) is not None
