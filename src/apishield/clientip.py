"""The real client address, believing forwarding headers only from trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from apishield.http import Headers

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientResolver:
    """Resolves the client IP from the TCP peer and, if the peer is trusted, its headers.

    With no trusted proxies (the default) the peer address is the client, whatever
    ``X-Forwarded-For`` says. Otherwise the forwarding chain is read right to left and
    the first address that is not a trusted proxy is the client.
    """

    def __init__(self, trusted: Iterable[str]) -> None:
        self._trusted: tuple[_Network, ...] = tuple(
            ipaddress.ip_network(cidr, strict=False) for cidr in trusted
        )

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self._trusted)

    def resolve(self, peer: str, headers: Headers) -> str:
        """The client address for a request from ``peer`` with ``headers``."""
        if not self._trusted or not self._is_trusted(peer):
            return peer
        chain = _forwarded_chain(headers)
        for hop in reversed(chain):
            if not self._is_trusted(hop):
                return hop
        return chain[0] if chain else peer


def _forwarded_chain(headers: Headers) -> list[str]:
    """Addresses from ``Forwarded`` (RFC 7239) or else ``X-Forwarded-For``, oldest first."""
    hops: list[str] = []
    for value in headers.get_all("forwarded"):
        for element in value.split(","):
            for pair in element.split(";"):
                key, _, raw = pair.strip().partition("=")
                if key.lower() == "for":
                    hops.append(_strip_node(raw.strip().strip('"')))
    if hops:
        return [h for h in hops if h]
    for value in headers.get_all("x-forwarded-for"):
        hops.extend(part.strip() for part in value.split(",") if part.strip())
    return hops


def _strip_node(node: str) -> str:
    """'[2001:db8::1]:4711' → '2001:db8::1'; '192.0.2.1:80' → '192.0.2.1'."""
    if node.startswith("["):
        return node[1 : node.find("]")] if "]" in node else node
    if node.count(":") == 1:
        return node.partition(":")[0]
    return node
