"""Request normalisation: decode what attackers encode, once, for every check."""

from __future__ import annotations

from urllib.parse import unquote, unquote_plus

from apishield.findings import Location, Source
from apishield.http import Request
from apishield.inputs import InputValue
from apishield.policy import Limits


def decode_path(path: str) -> str:
    """The percent-decoded path used for route matching."""
    return unquote(path) if "%" in path else path


def canonical(text: str) -> str:
    """The canonical form detectors match against."""
    return unquote_plus(text) if ("%" in text or "+" in text) else text


def request_head_inputs(request: Request, limits: Limits) -> list[InputValue]:
    """Every user-controlled value of the request line and headers."""
    values: list[InputValue] = []
    for pair in request.query.split("&") if request.query else ():
        key, _, raw = pair.partition("=")
        name = canonical(key)
        values.append(InputValue(Location(Source.QUERY, name), raw, canonical(raw)))
    return values
