"""SQL injection detection."""

from __future__ import annotations

import libinjection

from apishield.checks import ValueCheck, register
from apishield.findings import Finding
from apishield.inputs import InputValue


@register
class SqlInjection(ValueCheck):
    """SQL injection, by libinjection's SQL tokenizer and fingerprints."""

    id = "sqli"
    category = "injection"

    def inspect(self, value: InputValue) -> Finding | None:
        result = libinjection.is_sql_injection(value.text)
        if not result["is_sqli"]:
            return None
        return self.finding(
            value.location,
            "SQL injection",
            value.text,
            90,
        )
