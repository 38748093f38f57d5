def plain_text(text: str, stops: str, /) -> bool:
    """True when ``text`` is ASCII without any character of ``stops``."""

def plain_texts(body: bytes, max_depth: int, max_params: int, /) -> list[str] | None:
    """The keys and strings of a plain JSON body, in order, or ``None``."""
