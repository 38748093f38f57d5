"""scanner: attack tools named in the User-Agent, and nowhere else."""

from __future__ import annotations

import pytest

from apishield.checks.scanner import Scanner
from apishield.findings import Location, Source
from apishield.inputs import InputValue
from apishield.policy import CheckSettings, policy_from_dict


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(CheckSettings(), policy_from_dict({}))


def _header(name: str, text: str) -> InputValue:
    return InputValue(Location(Source.HEADER, name), text, text)


@pytest.mark.parametrize(
    ("agent", "tool"),
    [
        ("sqlmap/1.7.2#stable (https://sqlmap.org)", "sqlmap"),
        ("Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:000003)", "Nikto"),
        ("nessus", "nessus"),
        ("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 5.1) Havij", "Havij"),
        ("Mozilla/5.0 zgrab/0.x", "zgrab"),
        (
            "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
            "Nmap Scripting Engine",
        ),
    ],
)
def test_scanner_user_agents(scanner: Scanner, agent: str, tool: str) -> None:
    finding = scanner.check_value(_header("user-agent", agent))
    assert finding is not None and finding.evidence == tool and finding.score >= 50


@pytest.mark.parametrize(
    "value",
    [
        _header("user-agent", "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_0) Safari/605.1.15"),
        _header("user-agent", "nucleitide-sequencer/2.0"),
        _header("referer", "https://github.com/sqlmapproject/sqlmap"),
        InputValue(Location(Source.QUERY, "q"), "nikto", "nikto"),
    ],
)
def test_tool_names_elsewhere_are_data(scanner: Scanner, value: InputValue) -> None:
    assert scanner.check_value(value) is None
