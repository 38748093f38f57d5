"""Security events: the one structured record every transaction ends in."""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

from apishield.findings import Finding

_MILLIS_MASK: Final = (1 << 48) - 1


# A generator of our own, seeded from the OS and again in every forked worker: an
# application that seeds the global one (say random.seed(0) in each worker) cannot
# make two processes issue the same ids. Ids are unique, not secret, so a system call
# per id (os.urandom, a quarter of the proxy's syscalls) buys nothing.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)
_random_bits: Final = _ids.getrandbits  # bound once, not looked up per id


def new_event_id(now: float | None = None) -> str:
    """A 32-hex-digit id: 48 bits of milliseconds, then 80 random bits.

    Ids sort by time as strings and are unique without coordination between workers.
    """
    millis = int((time.time() if now is None else now) * 1000) & _MILLIS_MASK
    return ((millis << 80) | _random_bits(80)).to_bytes(16, "big").hex()


@dataclass(init=False, slots=True)  # see findings.Location
class SecurityEvent:
    """What happened to one transaction and why.

    ``verdict`` is ``allow``, ``monitor`` (findings recorded, nothing blocked),
    ``block`` or ``reject``. Latencies are in milliseconds.
    """

    event_id: str
    time: float
    client_ip: str
    method: str
    path: str
    route: str
    status: int
    verdict: str
    findings: list[Finding]
    identity: str | None
    engine_ms: float
    upstream_ms: float | None
    reason: str

    def __init__(
        self,
        *,
        event_id: str,
        time: float,
        client_ip: str,
        method: str,
        path: str,
        route: str,
        status: int,
        verdict: str,
        findings: list[Finding] | None = None,
        identity: str | None = None,
        engine_ms: float = 0.0,
        upstream_ms: float | None = None,
        reason: str = "",
    ) -> None:
        self.event_id = event_id
        self.time = time
        self.client_ip = client_ip
        self.method = method
        self.path = path
        self.route = route
        self.status = status
        self.verdict = verdict
        self.findings = [] if findings is None else findings
        self.identity = identity
        self.engine_ms = engine_ms
        self.upstream_ms = upstream_ms
        self.reason = reason

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict; the schema every sink writes."""
        return {
            "event_id": self.event_id,
            "time": self.time,
            "client_ip": self.client_ip,
            "identity": self.identity,
            "method": self.method,
            "path": self.path,
            "route": self.route,
            "status": self.status,
            "verdict": self.verdict,
            "reason": self.reason,
            "findings": [f.to_json() for f in self.findings],
            "engine_ms": round(self.engine_ms, 4),
            "upstream_ms": None if self.upstream_ms is None else round(self.upstream_ms, 3),
        }

    def to_bytes(self) -> bytes:
        """One JSON line, without the newline."""
        return orjson.dumps(self.to_json())


class EventSink(Protocol):
    """Where events go. ``emit`` must not block the caller for I/O (sinks buffer)."""

    def emit(self, event: SecurityEvent) -> None:
        """Queue ``event`` for writing."""

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything queued so far; False if ``timeout`` seconds passed first."""

    def close(self) -> None:
        """Flush and release resources."""
