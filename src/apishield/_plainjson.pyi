def plain_texts(body: bytes, max_depth: int, max_params: int, /) -> list[str] | None:
    """The keys and strings of a plain JSON body, in order, or ``None``."""
