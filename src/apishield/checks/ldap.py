"""LDAP filter injection: a value that closes the filter it is placed in and opens another.

An application builds ``(uid=<value>)`` or ``(&(uid=<value>)(pw=...))``. A value
that starts like plain data (a name, an id, ``*``; one word at ``balanced``) and then
closes a parenthesis it never opened, followed by the start of a new filter component
(``(cn=``, ``(&``, ``(|``, ``(!``, or ``&(``/``|(``/``!(`` with an attribute test),
rewrites the filter: ``*)(uid=*))(|(uid=*`` matches every entry. Prose and code open
their parentheses before closing them (``f(x)(y=2)``, ``(see note)``), so the plain
prefix, free of ``( ) : & | ! < > ~``, is what separates the injection from text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from apishield.checks import ValueCheck, register
from apishield.findings import Finding
from apishield.inputs import InputValue
from apishield.signatures import BEGIN, Hit, register_check_signatures

_ATTRIBUTE_TEST: Final = r"[a-z][\w.;-]*\s*[<>~]?="  # cn=, cn>=, sn~=, cn;binary=
_COMPONENT: Final = rf"\)+\s*(?:\(\s*{_ATTRIBUTE_TEST}|\(\s*[&|!]|[&|!]\s*\(\s*{_ATTRIBUTE_TEST})"
_PLAIN_WORD: Final = r"[^\s:()&|!<>~\x00]*"
_PLAIN_WORDS: Final = r"[^:()&|!<>~\x00]*"  # after words ("a) (x=1)" is a lettered list): strict
_BREAKOUT: Final = re.compile(_PLAIN_WORD + _COMPONENT, re.IGNORECASE)
_SPACED_BREAKOUT: Final = re.compile(_PLAIN_WORDS + _COMPONENT, re.IGNORECASE)

# Gates (no start offsets: cheaper); inspect finds the breakout's extent.
register_check_signatures(
    "ldapi",
    (
        ("breakout", rf"{BEGIN}{_PLAIN_WORD}{_COMPONENT}", "filter breakout", 0),
        ("spaced_breakout", rf"{BEGIN}{_PLAIN_WORDS}{_COMPONENT}", "filter breakout", 0, "strict"),
    ),
)


class LdapInjection(ValueCheck):
    """LDAP injection: values that close their filter and add components to it."""

    id = "ldapi"
    category = "injection"
    title = "LDAP injection"
    description = "LDAP search filter breakouts in any request value"

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        found = _BREAKOUT.match(value.text)
        if found is not None:
            return self.found(value, "filter breakout", found.group(0), 80)
        found = _SPACED_BREAKOUT.match(value.text) if self.strict else None
        if found is not None:
            return self.found(value, "filter breakout after words", found.group(0), 70)
        return None


register(LdapInjection)
