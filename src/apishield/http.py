"""Framework-neutral HTTP values: the only shapes adapters hand to the engine.

Adapters translate whatever their server gives them into these immutable values;
the engine never sees a socket, a framework object or a coroutine.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Final

from apishield.memo import remember
from apishield.rawheaders import decode_headers

_LOWER_NAMES: Final[dict[str, str]] = {}
_MAX_LOWER_NAMES: Final = 1024
_REMEMBERED_NAME_CHARS: Final = 64


def lower_name(name: str) -> str:
    """``name.lower()``, remembered: a header name recurs (as the same string, with its
    hash, when the C module decoded it), and so does its lower-case form. Up to
    1,024 names of up to 64 characters (then it starts over): a bounded memory."""
    if len(name) > _REMEMBERED_NAME_CHARS:
        return name.lower()
    lower = _LOWER_NAMES.get(name)
    if lower is None:
        lower = remember(_LOWER_NAMES, name, name.lower(), _MAX_LOWER_NAMES)
    return lower


class Headers:
    """An immutable, ordered, case-insensitive multi-map of header names to values.

    Names and values are ``str`` (decoded as latin-1 by adapters, as HTTP/1.1 allows).
    Order and duplicates are preserved so that the upstream sees exactly what arrived.
    """

    __slots__ = ("_index", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: tuple[tuple[str, str], ...] = tuple(items)
        self._index: dict[str, str] | None = None  # built by the first lookup

    def _lookup(self) -> dict[str, str]:
        """Lower-cased name → its first value (``get_all`` reads the items)."""
        index = self._index
        if index is None:
            index = {lower_name(name): value for name, value in reversed(self._items)}
            self._index = index
        return index

    @staticmethod
    def from_raw(raw: Iterable[tuple[bytes, bytes]]) -> Headers:
        """Build from the ``(name, value)`` byte pairs that servers such as ASGI give."""
        return Headers(decode_headers(raw))  # the class by name (compiled: a direct call)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        value = self._lookup().get(lower_name(name))
        return default if value is None else value

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name`` in arrival order."""
        wanted = name.lower()
        return [value for key, value in self._items if key.lower() == wanted]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and lower_name(name) in self._lookup()

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and self._items == other._items

    def __hash__(self) -> int:
        return hash(self._items)

    def __repr__(self) -> str:
        return f"Headers({list(self._items)!r})"

    def raw(self) -> list[tuple[bytes, bytes]]:
        """The headers as latin-1 byte pairs, for adapters writing them back out."""
        return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in self._items]


@dataclass(init=False, unsafe_hash=True, slots=True)  # see findings.Location
class Request:
    """One HTTP request as the engine sees it.

    ``path`` is the raw path (percent-encoding kept) and ``query`` the raw query
    string without ``?``; normalisation happens in the engine, not in adapters.
    ``client`` is the TCP peer address; the engine derives the real client from
    forwarding headers only when the peer is a trusted proxy.
    """

    method: Final[str]
    path: Final[str]
    query: Final[str]
    headers: Final[Headers]
    body: Final[bytes]
    client: Final[str]
    scheme: Final[str]
    http_version: Final[str]

    def __init__(  # noqa: PLR0917 - a record's fields, in order
        self,
        method: str,
        path: str,
        query: str = "",
        headers: Headers | None = None,
        body: bytes = b"",
        client: str = "",
        scheme: str = "http",
        http_version: str = "1.1",
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = Headers() if headers is None else headers
        self.body = body
        self.client = client
        self.scheme = scheme
        self.http_version = http_version

    @property
    def target(self) -> str:
        """The request target as it appeared on the request line."""
        return f"{self.path}?{self.query}" if self.query else self.path

    def with_body(self, body: bytes) -> Request:
        """This request with ``body`` (what ``dataclasses.replace`` does, without its
        generic field walk: adapters call it once per request)."""
        return Request(
            self.method,
            self.path,
            self.query,
            self.headers,
            body,
            self.client,
            self.scheme,
            self.http_version,
        )


@dataclass(init=False, unsafe_hash=True, slots=True)  # see findings.Location
class Response:
    """One HTTP response as the engine sees it."""

    status: Final[int]
    headers: Final[Headers]
    body: Final[bytes]

    def __init__(self, status: int, headers: Headers | None = None, body: bytes = b"") -> None:
        self.status = status
        self.headers = Headers() if headers is None else headers
        self.body = body

    def with_body(self, body: bytes) -> Response:
        """This response with ``body`` (see :meth:`Request.with_body`)."""
        return Response(self.status, self.headers, body)
