"""Security scanners that name themselves in the User-Agent (sqlmap, Nikto, Nessus, ...).

A scanner's User-Agent is no injection, but it is a declared attack tool probing the
API: no honest end-user client sends it. The score (60) blocks at ``balanced``; teams
that scan their own API set ``checks.scanner.mode: monitor`` or exclude the scanner.
Only the ``User-Agent`` header counts: a tool name elsewhere (a search for "nikto",
a JSON field) is data.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from apishield.checks import ValueCheck, register
from apishield.findings import Finding, Source
from apishield.inputs import InputValue
from apishield.signatures import BEGIN, END, Hit, best_of, register_check_signatures

SCORE: Final = 60
_TOOLS: Final = (
    "sqlmap|nikto|nessus|openvas|havij|arachni|nuclei|zgrab|acunetix|netsparker|w3af|wpscan"
    "|joomscan|droopescan|dirbuster|gobuster|feroxbuster|wfuzz|ffuf|masscan|skipfish|webinspect"
    "|appscan|commix|xsser|sqlninja|bsqlbf|pangolin|paros|fimap|zmeu|morfeus|nmap scripting engine"
    "|n-stealth|webshag|jaeles|whatweb|brutus|dirb|nmap|qualys|burp collaborator|sqlsus|grabber"
)

register_check_signatures(
    "scanner",
    (
        (
            "tool",
            rf"(?:{BEGIN}|[\s/(;,+_-])(?:{_TOOLS})(?:[\s/);,:+_.-]|{END})",
            "security scanner User-Agent",
            SCORE,
        ),
    ),
)


class Scanner(ValueCheck):
    """Vulnerability scanners and attack tools announced in the User-Agent header."""

    id = "scanner"
    category = "reconnaissance"
    title = "Security scanner"
    description = "Attack tools and vulnerability scanners named in the User-Agent"
    owasp = "API8:2023 Security Misconfiguration"
    inspects_plain = True  # "nessus" alone is a plain value

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        location = value.location
        if location.source is not Source.HEADER or location.name != "user-agent":
            return None
        hit, _ = best_of(hits)
        if hit is None:
            return None
        tool = hit.evidence.strip(" /();,+_-:.\x00")
        return self.found(value, "tool", tool, hit.signature.score)


register(Scanner)
