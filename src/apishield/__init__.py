"""apishield: one sans-I/O API security engine behind a proxy, middleware and analysers."""

from apishield import engine as _engine
from apishield.engine import Engine, Transaction
from apishield.errors import ApishieldError, PolicyError
from apishield.findings import Action, Finding, Location, Mode, Phase, Severity, Source, Verdict
from apishield.http import Headers, Request, Response
from apishield.policy import Policy, load_policy, parse_policy, policy_from_dict

__all__ = [
    "COMPILED",
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
#: True when the engine's per-request modules run compiled by mypyc (see setup.py).
COMPILED = not (_engine.__file__ or "").endswith(".py")
