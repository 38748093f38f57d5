"""Body parsers: every value of a request body, with its location."""

from __future__ import annotations

from apishield.findings import Location, Source
from apishield.inputs import InputValue
from apishield.policy import Limits


def body_inputs(body: bytes, content_type: str | None, limits: Limits) -> list[InputValue]:
    """The values of ``body`` according to ``content_type``."""
    text = body.decode("utf-8", "replace")
    return [InputValue(Location(Source.BODY), text, text)]
