"""apishield: one sans-I/O API security engine behind a proxy, middleware and analysers."""

from apishield.engine import Engine, Transaction
from apishield.errors import ApishieldError, PolicyError
from apishield.findings import Action, Finding, Location, Mode, Phase, Severity, Source, Verdict
from apishield.http import Headers, Request, Response
from apishield.policy import Policy, load_policy, parse_policy, policy_from_dict

__all__ = [
    "Action",
    "ApishieldError",
    "Engine",
    "Finding",
    "Headers",
    "Location",
    "Mode",
    "Phase",
    "Policy",
    "PolicyError",
    "Request",
    "Response",
    "Severity",
    "Source",
    "Transaction",
    "Verdict",
    "load_policy",
    "parse_policy",
    "policy_from_dict",
]
__version__ = "0.1.0"
