"""Masking secrets in what apishield writes down (evidence and messages of findings).

Two rules: a value found under a sensitive name (``password``, ``api_key``, a
session cookie, ...) is masked whole; recognisable secrets (JSON Web Tokens, bearer
tokens, card numbers that pass the Luhn check, AWS access keys, private key blocks)
are masked wherever they appear.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from apishield.findings import Location

_SENSITIVE_NAME = re.compile(
    r"pass(?:word|wd|phrase)?|pwd|secret|token|api[-_]?key|access[-_]?key|private[-_]?key"
    r"|authori[sz]ation|session|sessid|credential|card[-_]?(?:number|no)|cvv|cvc|ssn|pin\b",
    re.IGNORECASE,
)
_SECRETS = re.compile(
    r"\beyJ[\w-]{5,}\.[\w-]{5,}\.[\w-]*"  # JSON Web Token
    r"|\bbearer\s+[\w.~+/-]{12,}=*"  # bearer token
    r"|\bAKIA[0-9A-Z]{16}\b"  # AWS access key id
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
    re.IGNORECASE,
)
_CARD = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
MASK = "[masked]"


def is_sensitive(location: Location) -> bool:
    """True when the location's name marks its value as a secret."""
    return bool(location.name) and _SENSITIVE_NAME.search(location.name) is not None


def mask_text(text: str) -> str:
    """``text`` with every recognisable secret replaced by ``[masked]``."""
    if not text:
        return text
    text = _SECRETS.sub(MASK, text)
    return _CARD.sub(_mask_card, text) if any(c.isdigit() for c in text) else text


def mask_evidence(evidence: str, message: str, location: Location) -> tuple[str, str]:
    """The evidence and message of a finding at ``location``, secrets masked."""
    if evidence and is_sensitive(location):
        masked = f"[masked: {len(evidence)} characters]"
        return masked, mask_text(message.replace(evidence, masked))
    return mask_text(evidence), mask_text(message)


def _mask_card(match: re.Match[str]) -> str:
    digits = [int(c) for c in match.group(0) if c.isdigit()]
    return MASK if _luhn(digits) else match.group(0)


def _luhn(digits: list[int]) -> bool:
    doubled = (d * 2 - 9 if d > 4 else d * 2 for d in reversed(digits[-2::-2]))
    return (sum(digits[-1::-2]) + sum(doubled)) % 10 == 0
