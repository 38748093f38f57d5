"""Inspected values: every piece of user input, with where it came from.

The engine extracts these once per request (see :mod:`apishield.normalize` and
:mod:`apishield.parsers`) and every check reads the same list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from apishield.findings import Location


@dataclass(init=False, unsafe_hash=True, slots=True)  # see findings.Location
class InputValue:
    """One user-controlled value.

    ``raw`` is the value as it arrived inside its container (a query value still
    percent-encoded, a JSON string after JSON unescaping); ``text`` is the canonical
    form detectors match against (fully decoded and normalised). Parameter names
    and object keys are values too, with a ``*_KEY`` source.
    """

    location: Final[Location]
    raw: Final[str]
    text: Final[str]

    def __init__(self, location: Location, raw: str, text: str) -> None:
        self.location = location
        self.raw = raw
        self.text = text


class InputRejected(Exception):
    """Raised inside extraction when a request breaks a limit or cannot be parsed.

    The engine turns it into a ``REJECT`` verdict; it never leaves the engine.
    """

    def __init__(self, check: str, status: int, message: str, location: Location) -> None:
        super().__init__(message)
        self.check = check
        self.status = status
        self.message = message
        self.location = location
