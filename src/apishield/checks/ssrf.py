"""Server-side request forgery: URLs in request values that aim at internal targets.

Gate signatures select values holding a URL whose host looks numeric, bracketed,
obfuscated or like an internal name. :func:`targets` then reads every URL in the
value the way lenient URL parsers do (``http:host`` without slashes, backslashes,
userinfo, several ``@`` in one authority) and :func:`judge_host` decides what each
host reaches: loopback, private, link-local, other non-public ranges and cloud
metadata addresses, written in any IPv4 form ``inet_aton`` accepts (``2130706433``,
``0x7f000001``, ``0177.0.0.1``, ``127.1``, overflowing values truncated to 32 bits)
or as IPv6 (mapped, compatible, zone ids); internal DNS names (``localhost``,
``*.internal``, Kubernetes services); and public names that resolve to internal
addresses (``127.0.0.1.nip.io``, ``localtest.me``) or exist to rebind DNS.

A value that *is* a URL (it starts with one, or holds no whitespace, like a URL
nested in another URL's query) is what a server fetches, and is judged at
``balanced``; a URL inside prose ("open http://localhost:3000 to see it") only at
``strict``. Headers name local hosts honestly (a ``Referer`` from a developer's
machine or a home router), so there only metadata addresses and smuggling schemes
count. An OAuth ``redirect_uri`` to loopback is RFC 8252's native-app redirect,
which the authorisation server never fetches. Fields that configure where a server
itself connects or listens (reverse-proxy upstreams, backends, database and broker
URLs, CORS origins, registered redirect URIs) name local hosts honestly in admin
APIs: there a plainly written loopback or private address counts only at
``strict``. Metadata addresses and obfuscated forms count everywhere.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Sequence
from typing import Final, NamedTuple

from apishield.checks import ValueCheck, register
from apishield.findings import Finding, Source
from apishield.inputs import InputValue
from apishield.signatures import BEGIN, Hit, best_of, register_check_signatures

IPv4 = ipaddress.IPv4Address
IPv6 = ipaddress.IPv6Address

# Names that resolve to loopback on common systems (/etc/hosts of Debian, RHEL, Docker).
_LOOPBACK_NAMES: Final = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "localhost4",
        "localhost4.localdomain4",
        "localhost6",
        "localhost6.localdomain6",
        "ip6-localhost",
        "ip6-loopback",
        "ipv6-localhost",
        "ipv6-loopback",
    }
)
_METADATA_NAMES: Final = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.packet.net",
        "metadata.platformequinix.com",
        "metadata.tencentyun.com",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
# Private DNS namespaces: mDNS, RFC 8375, cloud-internal zones, Kubernetes services.
_INTERNAL_SUFFIXES: Final = (
    ".localhost",
    ".internal",
    ".local",
    ".localdomain",
    ".home.arpa",
    ".svc",
)
_INTERNAL_NAMES: Final = frozenset({"kubernetes.default", "kubernetes"})
# Public domains whose every name resolves to 127.0.0.1 (developer conveniences).
_LOOPBACK_DOMAINS: Final = (
    "localtest.me",
    "lvh.me",
    "vcap.me",
    "lacolhost.com",
    "fuf.me",
    "localho.st",
)
# Wildcard DNS that answers with the address spelled in the name (127.0.0.1.nip.io).
_ECHO_DOMAINS: Final = ("nip.io", "sslip.io", "xip.io", "traefik.me", "nip.direct")
# Services whose names exist to rebind DNS between two addresses.
_REBINDING_DOMAINS: Final = ("rbndr.us", "1u.ms", "rebind.network", "rebind.it")
_METADATA_ADDRESSES: Final = frozenset(
    {
        IPv4("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean
        IPv4("169.254.170.2"),  # AWS ECS task metadata
        IPv4("100.100.100.200"),  # Alibaba Cloud
        IPv4("192.0.0.192"),  # Oracle Cloud
        IPv6("fd00:ec2::254"),  # AWS over IPv6
    }
)
# IANA special-purpose IPv4 ranges (RFC 6890 and successors): none is a public server.
_NON_PUBLIC_V4: Final = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/3",
    )
)
_GLOBAL_UNICAST_V6: Final = ipaddress.IPv6Network("2000::/3")
_DOCUMENTATION_V6: Final = ipaddress.IPv6Network("2001:db8::/32")
_SIX_TO_FOUR: Final = ipaddress.IPv6Network("2002::/16")
_SMUGGLING_SCHEMES: Final = {
    "gopher": 90,
    "dict": 85,
    "netdoc": 90,
    "local_file": 90,
    "tftp": 80,
    "jar": 85,
}

_IPV4_PART: Final = re.compile(r"0x[0-9a-f]{0,16}|0[0-7]{0,22}|[1-9][0-9]{0,19}", re.IGNORECASE)
_DOTS: Final = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_URL: Final = re.compile(
    r"(?<![\w+.-])(?P<scheme>[a-z][a-z0-9+.\-_]{1,15}):(?P<slashes>[/\\]{0,3})"
    r"(?P<authority>[^/?#\s\"'<>()\x00]*)",
    re.IGNORECASE,
)
_SCHEMELESS: Final = re.compile(
    r"[\s\"']*(?://(?P<relative>[^/\\?#\s\"'<>()\x00]+)|(?P<authority>[^/\\?#\s\"'<>()\x00]+)[/\\])"
)
_AT_HOST: Final = re.compile(r"@\s*(?P<authority>[^/?#\s\"'<>()@\x00]+)")
_ECHOED_IP: Final = re.compile(
    r"(?<!\d)(\d{1,3})[.-](\d{1,3})[.-](\d{1,3})[.-](\d{1,3})(?!\d)"
    r"|(?<![0-9a-f])([0-9a-f]{8})(?![0-9a-f])",
    re.IGNORECASE,
)
_REDIRECT_URI: Final = re.compile(r"redirect_uri\W*$", re.IGNORECASE)
_CONFIG_FIELD: Final = re.compile(
    r"upstream|backend|proxypass|listen|bindaddr|dsn|(?:database|db|redis|mongo|amqp|broker)"
    r"(?:url|uri|host)|nameserver|resolver|noproxy|trustedprox|allowedorigin|corsorigin"
    r"|redirecturis"
)
_SEPARATORS: Final = str.maketrans("", "", "_-. ")
STRICT_SCORE: Final = 60
_LEADING: Final = " \t\r\n\"'"
_SPACE: Final = re.compile(r"\s")

_NAME_HINTS: Final = (
    r"(?:localhost|ip6-|ipv6-|metadata|instance-data|kubernetes|\.internal|\.local|\.home\.arpa"
    r"|\.svc|nip\.io|sslip\.io|xip\.io|traefik\.me|localtest\.me|lvh\.me|vcap\.me|lacolhost\.com"
    r"|fuf\.me|localho\.st|rbndr\.us|1u\.ms|rebind\.)"
)
register_check_signatures(
    "ssrf",
    (
        (
            "url",
            rf"\b[a-z][a-z0-9+.\-_]{{1,15}}:[/\\]{{1,3}}(?:\[|\d|\\|[\w.:%&@-]*?{_NAME_HINTS}"
            r"|[\w.:%&-]*@\s*[\d\[])",
            "URL to a suspicious host",
            0,
        ),
        ("bare_http", r"\bhttps?:(?:\[|\d)", "URL to a numeric host", 0),
        ("userinfo_ip", r"@\s*(?:\[|\d{1,3}\.\d|\d{8,}|0x[0-9a-f])", "@ before an address", 0),
        (
            "schemeless",
            rf"{BEGIN}\s*(?://(?:\[|\d)|(?://)?[\w.-]*{_NAME_HINTS}[\w.-]*(?::\d+)?[/\\])",
            "internal host",
            0,
        ),
        (
            "scheme",
            r"\b(?:gopher|dict|tftp|netdoc|local_file):/|\bjar:[a-z]+:",
            "request smuggling scheme",
            0,
        ),
        # Apache mod_proxy reads "unix:/socket|http://host/" as a Unix socket, then the URL
        # after the bar as the upstream: any host the attacker picks (CVE-2021-40438).
        ("unix_socket", r"\bunix:[^|\x00\s]*\|[a-z][a-z0-9+.-]*://", "unix socket proxy URL", 90),
    ),
)


class Target(NamedTuple):
    """What a host reaches: a finding kind and its score."""

    kind: str
    score: int
    plain: bool = True  # written as people write it, no obfuscation


class Url(NamedTuple):
    """One URL (or URL-like host) found in a value."""

    scheme: str
    host: str
    start: int
    end: int
    obfuscated: bool  # backslashes in the authority


class ServerSideRequestForgery(ValueCheck):
    """URLs to loopback, private, link-local or metadata hosts, in any written form."""

    id = "ssrf"
    category = "ssrf"
    title = "Server-side request forgery"
    owasp = "API7:2023 Server Side Request Forgery"
    description = "URLs aiming at internal or cloud metadata hosts in request values"
    inspects_plain = True  # "http:2130706433" is plain text

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        hit, _ = best_of(hits)
        if hit is not None:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        text = value.text
        best: tuple[Target, Url] | None = None
        for url in targets(text):
            target = self._judge(value, url)
            if target is not None and (best is None or target.score > best[0].score):
                best = (target, url)
        if best is None:
            return None
        target, url = best
        score = target.score if _is_fetched(text, url) else STRICT_SCORE
        if score <= STRICT_SCORE and not self.strict:
            return None
        return self.found(value, target.kind, text[url.start : url.end], score)

    def _judge(self, value: InputValue, url: Url) -> Target | None:
        smuggling = _SMUGGLING_SCHEMES.get(url.scheme)
        if smuggling is not None:
            return Target(f"{url.scheme}: URL", smuggling)
        target = judge_host(url.host)
        if url.obfuscated and url.host:
            target = (target or Target("obfuscated host", 70))._replace(plain=False)
        if target is None or target.score >= 95 or not target.plain:
            return target
        if value.location.source is Source.HEADER or _oauth_loopback(value, url, target):
            return None
        name = value.location.name.lower().translate(_SEPARATORS)
        return target._replace(score=STRICT_SCORE) if _CONFIG_FIELD.search(name) else target


def _is_fetched(text: str, url: Url) -> bool:
    """True when ``url`` is what a server would fetch: the value starts with it, or
    the value is one token (a URL nested in another's query, a path)."""
    leading = len(text) - len(text.lstrip(_LEADING))
    return url.start == leading or _SPACE.search(text.strip()) is None


def _oauth_loopback(value: InputValue, url: Url, target: Target) -> bool:
    """An OAuth ``redirect_uri`` to loopback (RFC 8252 §7.3), as a parameter or nested."""
    if target.kind != "loopback address" or url.scheme not in ("http", "https"):
        return False
    name = value.location.name.rsplit("/", 1)[-1]
    return bool(_REDIRECT_URI.search(name) or _REDIRECT_URI.search(value.text[: url.start]))


def targets(text: str) -> Iterator[Url]:
    """Every URL in ``text`` with each host a lenient parser might connect to."""
    first = True
    for match in _URL.finditer(text):
        scheme = match.group("scheme").lower()
        slashes = match.group("slashes")
        if not slashes and scheme not in ("http", "https", "jar"):
            continue
        yield from _hosts(scheme, slashes, match.group("authority"), match.start(), match.end())
        if first and match.start() == len(text) - len(text.lstrip(_LEADING)):
            for extra in _AT_HOST.finditer(text, match.end()):  # "http://a &@b# @c/" tricks
                authority = extra.group("authority")
                yield from _hosts(scheme, "", authority, match.start(), extra.end())
        first = False
    schemeless = _SCHEMELESS.match(text)
    if schemeless is None:
        return
    relative = schemeless.group("relative")
    if relative is not None:
        yield from _hosts("", "//", relative, schemeless.start("relative") - 2, schemeless.end())
    elif _names_a_host(_host_of(schemeless.group("authority"))):
        authority = schemeless.group("authority")
        yield from _hosts("", "", authority, schemeless.start("authority"), schemeless.end())


def _names_a_host(first_segment: str) -> bool:
    """True when a URL-less value's first segment (``localhost/``) is an internal host
    name rather than a relative path: single-label names other than loopback's
    (``kubernetes/``, ``metadata/``) and ``.svc``/``.local`` files are paths."""
    if first_segment in _LOOPBACK_NAMES:
        return True
    if "." not in first_segment or first_segment.endswith((".svc", ".local")):
        return first_segment.endswith(".cluster.local")
    return _judge_name(first_segment) is not None


def _hosts(scheme: str, slashes: str, authority: str, start: int, end: int) -> Iterator[Url]:
    """The host of ``authority`` (after its last ``@``, without port and backslashes)."""
    obfuscated = "\\" in authority or "\\" in slashes
    host = _host_of(authority)
    if host:
        yield Url(scheme, host, start, end, obfuscated)


def _host_of(authority: str) -> str:
    """The host part of an authority: userinfo, port, brackets and backslashes removed."""
    host = authority.rpartition("@")[2].replace("\\", "")
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    head, colon, port = host.rpartition(":")
    if colon and (port.isdigit() or not port) and ":" not in head:
        host = head
    return host.translate(_DOTS).rstrip(".").lower()


def judge_host(host: str) -> Target | None:
    """What ``host`` reaches, or None for an ordinary public host."""
    if ":" in host:
        return _judge_ipv6(host)
    parsed = parse_ipv4(host)
    if parsed is not None:
        address, obfuscated = parsed
        target = judge_ipv4(address)
        if target is None and obfuscated:
            return Target("obfuscated IP address", 75, plain=False)
        return target._replace(plain=False) if target and obfuscated else target
    return _judge_name(host)


def parse_ipv4(host: str) -> tuple[IPv4, bool] | None:
    """``host`` read as ``inet_aton`` reads it (1-4 parts, hex, octal), and whether it
    is written other than as four plain decimals; values too large for their part are
    truncated, as some parsers do. None when ``host`` is not numeric."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_IPV4_PART.fullmatch(p) for p in parts):
        return None
    numbers = [_ipv4_number(p) for p in parts]
    *head, last = numbers
    if any(n > 255 for n in head):
        return None
    width = 8 * (4 - len(head))
    value = 0
    for number in head:
        value = value << 8 | number
    value = value << width | (last & ((1 << width) - 1))
    plain = len(parts) == 4 and all(p == str(n) for p, n in zip(parts, numbers, strict=True))
    return IPv4(value), not plain or last >= 1 << width


def _ipv4_number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    return int(part, 8) if part.startswith("0") else int(part)


def judge_ipv4(address: IPv4) -> Target | None:
    """The kind of a non-public IPv4 address, or None for a public one."""
    if address in _METADATA_ADDRESSES:
        return Target("cloud metadata address", 95)
    if address.is_loopback:
        return Target("loopback address", 90)
    if address.is_link_local:
        return Target("link-local address", 90)
    if any(address in network for network in _NON_PUBLIC_V4):
        kind = "private address" if address.is_private else "non-public address"
        return Target(kind, 90)
    return None


def _judge_ipv6(host: str) -> Target | None:
    try:
        address = IPv6(host)
    except ValueError:
        return None
    if address in _METADATA_ADDRESSES:
        return Target("cloud metadata address", 95)
    if address.sixtofour is not None:
        target = judge_ipv4(address.sixtofour)
        return target._replace(plain=False) if target else None
    embedded = address.ipv4_mapped
    if embedded is None and address.packed[:12] == bytes(12) and int(address) > 1:
        embedded = IPv4(address.packed[12:])  # IPv4-compatible ::a.b.c.d
    if embedded is not None:
        target = judge_ipv4(embedded)
        return (
            target._replace(plain=False)
            if target
            else Target("IPv4 address in IPv6 form", 75, plain=False)
        )
    if address.is_loopback:
        return Target("loopback address", 90)
    if address.is_link_local:
        return Target("link-local address", 90)
    if address not in _GLOBAL_UNICAST_V6 or address in _DOCUMENTATION_V6:
        return Target("non-public IPv6 address", 85)
    return None


def _judge_name(host: str) -> Target | None:
    if host in _METADATA_NAMES:
        return Target("cloud metadata host", 95)
    if host in _LOOPBACK_NAMES:
        return Target("loopback address", 90)
    if _in_domains(host, _LOOPBACK_DOMAINS):
        return Target("name resolving to loopback", 90, plain=False)
    if _in_domains(host, _REBINDING_DOMAINS):
        return Target("DNS rebinding host", 90, plain=False)
    if _in_domains(host, _ECHO_DOMAINS):
        return _judge_echoed(host)
    if host in _INTERNAL_NAMES or host.endswith(_INTERNAL_SUFFIXES):
        return Target("internal host name", 85)
    return None


def _in_domains(host: str, domains: Sequence[str]) -> bool:
    return any(host == d or host.endswith("." + d) for d in domains)


def _judge_echoed(host: str) -> Target | None:
    """A wildcard-DNS name (``10.0.0.1.nip.io``, ``7f000001.nip.io``) by the address it spells."""
    for match in _ECHOED_IP.finditer(host):
        if match.group(5):
            address = IPv4(int(match.group(5), 16))
        else:
            octets = [int(g) for g in match.groups()[:4]]
            if max(octets) > 255:
                continue
            address = IPv4(".".join(map(str, octets)))
        target = judge_ipv4(address)
        if target is not None:
            return Target(f"DNS name of a {target.kind}", target.score, plain=False)
    return None


register(ServerSideRequestForgery)
