def plain_text(text: str, stops: str, /) -> bool:
    """True when ``text`` is ASCII without any character of ``stops``."""

def plain_texts(body: bytes, max_depth: int, max_params: int, /) -> list[str] | None:
    """The keys and strings of a plain JSON body, in order, or ``None``."""

def find_headers(
    headers: list[tuple[bytes, bytes]], names: tuple[bytes, ...], /
) -> list[tuple[bytes, bytes]]:
    """The ``(name, value)`` of every header named in ``names`` (lower-case), in order."""

def header_lines(
    headers: list[tuple[bytes, bytes]], drop: tuple[bytes, ...], /
) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The lines of the headers not named in ``drop``, and the pairs of those that are."""

def decode_headers(headers: object, /) -> list[tuple[str, str]]:
    """The ``(name, value)`` byte pairs as latin-1 text."""

def split_pairs(text: str, /) -> list[str] | None:
    """Key, raw value, key, raw value... of an ASCII ``&``-separated string, or ``None``."""
