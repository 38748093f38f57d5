"""Log4Shell: Log4j ``${jndi:...}`` lookups, also when built from nested lookups.

Values with a lookup are resolved the way Log4j would, innermost first:
``${lower:J}`` → ``j``, ``${env:X:-j}`` and ``${::-j}`` → ``j`` (the default),
``${date:'j'}`` → ``j``; other lookups stay as they are. A JNDI lookup in the
result is Log4Shell; lookups that spell out single characters are obfuscation,
which no honest value needs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from apishield.checks import ValueCheck, register
from apishield.findings import Finding
from apishield.inputs import InputValue
from apishield.signatures import Hit, best_of, register_check_signatures

_ROUNDS: Final = 8
_INNERMOST: Final = re.compile(r"\$\{((?:[^${}\x00]|\$(?!\{))*)\}")
_CASE: Final = re.compile(r"\s*(lower|upper)\s*:(.*)", re.IGNORECASE | re.DOTALL)
_DATE: Final = re.compile(r"\s*date\s*:\s*'?([^']*)'?", re.IGNORECASE | re.DOTALL)
_JNDI: Final = re.compile(r"(?:\$\{|\x02)\s*jndi\s*:", re.IGNORECASE)
_OBFUSCATION_LIMIT: Final = 2  # lookups spelling out one or two characters each

register_check_signatures(
    "log4shell",
    (
        ("jndi", r"\$\{\s*jndi\s*:", "JNDI lookup", 95),
        # The brace written as an HTML entity, for a consumer that decodes entities first
        # ("&lbrace" without ";" is not decoded by HTML5 rules, so the text still has it).
        (
            "entity_jndi",
            r"\$\s*&(?:lbrace|lcub|#0*123|#x0*7b);?\s*jndi\s*:",
            "JNDI lookup with an entity brace",
            90,
        ),
        (
            "leak",
            r"\$\{\s*(?:env|sys|java|ctx|main|bundle|k8s|docker|spring|web|log4j|marker)\s*:"
            r"[^}\x00]*\}",
            "Log4j lookup",
            75,
        ),
        ("gate", r"\$\{[^}\x00]*?(?:\$\{|:)", "nested lookup", 0),
    ),
)


class Log4Shell(ValueCheck):
    """Log4j lookup injection (CVE-2021-44228 and its obfuscated forms)."""

    id = "log4shell"
    category = "injection"
    title = "Log4Shell"
    description = "Log4j JNDI and data lookups in any request value"

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        hit, _ = best_of(hits)
        if hit is not None and hit.signature.score >= 90:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        resolved, tricks = resolve(value.text)
        if _JNDI.search(resolved):
            return self.found(value, "obfuscated JNDI lookup", value.text[:120], 95)
        if tricks >= _OBFUSCATION_LIMIT:
            return self.found(value, "obfuscated lookup", value.text[:120], 90)
        if hit is not None:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        return None


def resolve(text: str) -> tuple[str, int]:
    """``text`` with case, default and date lookups resolved, and how many spelled 1-2 chars."""
    tricks = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal tricks
        result = _lookup(match.group(1))
        if result is None:
            return "\x02" + match.group(1) + "\x03"
        tricks += len(result.strip()) <= _OBFUSCATION_LIMIT
        return result

    for _ in range(_ROUNDS):
        text, count = _INNERMOST.subn(replace, text)
        if not count:
            break
    return text, tricks


def _lookup(body: str) -> str | None:
    """What Log4j makes of ``${body}`` when it is a pure text trick, else None."""
    if ":-" in body:
        return body.partition(":-")[2]
    case = _CASE.fullmatch(body)
    if case is not None:
        return case.group(2).lower() if case.group(1).lower() == "lower" else case.group(2).upper()
    date = _DATE.fullmatch(body)
    return date.group(1) if date is not None else None


register(Log4Shell)
