"""Session fixation: planting a session id in the victim's browser.

Two ways: a request value that sets a cookie from script or markup
(``document.cookie="...; domain=..."``, ``<meta http-equiv="set-cookie">``), and a
link from another site that carries a framework's session id as a parameter
(``/login?PHPSESSID=known-to-the-attacker`` with a Referer elsewhere).

Only framework session cookie names count at ``balanced`` (``JSESSIONID``,
``PHPSESSID``, ``laravel_session``, ``connect.sid``, ...): generic names such as
``session_id`` arrive from other sites in honest flows (a payment provider's
redirect back to ``/success?session_id=...``), so they count at ``strict`` only, as
does a session id parameter with no Referer at all (a bookmarked link).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final

from apishield.checks import Check, TransactionView, ValueCheck, register
from apishield.findings import Finding, Phase, Source
from apishield.inputs import InputValue
from apishield.signatures import Hit, best_of, register_check_signatures

OFFSITE_SCORE: Final = 60
_KEY_SOURCES: Final = frozenset(
    {Source.QUERY_KEY, Source.FORM_KEY, Source.JSON_KEY, Source.MULTIPART_NAME}
)
_FRAMEWORK_NAMES: Final = frozenset(
    {
        "jsessionid",
        "phpsessid",
        "phpsession",
        "asp.net_sessionid",
        "aspsessionid",
        "laravel_session",
        "connect.sid",
        "sails.sid",
        "koa.sess",
        "koa:sess",
        "rack.session",
        "_rails_session",
        "play_session",
        "ci_session",
        "cakephp",
        "_flask_session",
        "zend_session_id",
        "zendsessionid",
        "cfid",
        "cftoken",
        "cfsid",
        "weblogicsession",
        "jservsession",
        "jwsession",
        "shiny-token",
        "meteor_login_token",
        "next-auth.session-token",
        "__host-next-auth.session-token",
        "__secure-next-auth.session-token",
    }
)
# Generic session id names (strict only): "sessionid", "session_id", "sid", "x.sess", ...
_GENERIC_NAME: Final = re.compile(
    r"(?:__(?:host|secure)-)?(?:[\w.:-]*[_.:-])?(?:sess(?:ion)?[_.:-]?(?:id|token)|sid)"
)

_AUTHORITY_END: Final = re.compile(r"[/?#\\]")

register_check_signatures(
    "session_cookie",
    (
        (
            "script_cookie",
            r"\.cookie\b[^;\x00]*;\s*(?:expires|domain|max-age)\s*=",
            "cookie set by script",
            70,
        ),
        ("meta_cookie", r"http-equiv\W{1,4}set-cookie\b", "cookie set by markup", 80),
    ),
)


class SessionCookie(ValueCheck):
    """Script or markup in a request value that sets a cookie (session fixation via XSS)."""

    id = "session_cookie"
    category = "session_fixation"
    title = "Session fixation"
    description = "Script or markup that sets a cookie, in any request value"
    owasp = "API2:2023 Broken Authentication"

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        hit, _ = best_of(hits)
        if hit is None:
            return None
        return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)


class SessionFixation(Check):
    """A session id parameter in a request that another site made the browser send."""

    id = "session_fixation"
    category = "session_fixation"
    owasp = "API2:2023 Broken Authentication"
    phases = frozenset({Phase.REQUEST_HEADERS, Phase.REQUEST_BODY})
    description = "Session id parameters arriving from another site (a planted session)"

    def run(self, view: TransactionView, phase: Phase) -> Iterable[Finding]:
        # a list, not a generator: most requests end at the first test (compiled, a
        # generator object costs more than that test)
        strict = self.sensitivity == "strict"
        headers = view.request.headers
        referer = headers.get("referer")
        if referer is None:
            if not strict:
                return ()
            why = "with no Referer"
        else:
            site = referer_host(referer)
            hosts = (headers.get("host"), headers.get("x-forwarded-host"))
            if not site or any(same_site(site, h) for h in hosts if h):
                return ()
            why = f"from {site}"
        found: list[Finding] = []
        for value in view.inputs_for(self.id):
            if value.location.source not in _KEY_SOURCES:
                continue
            name = value.text.lower()
            framework = name in _FRAMEWORK_NAMES or name.startswith("aspsessionid")
            planted = framework and referer is not None
            if not planted and not (strict and (framework or _GENERIC_NAME.fullmatch(name))):
                continue
            message = f"Session fixation: session id parameter `{value.text}` {why}"
            found.append(self.finding(value.location, message, value.text, OFFSITE_SCORE))
        return found


def referer_host(referer: str) -> str:
    """The lower-case host name of an absolute URL, or '' when it has none."""
    _, sep, rest = referer.partition("://")
    if not sep:
        return ""
    authority = _AUTHORITY_END.split(rest, maxsplit=1)[0].rpartition("@")[2]
    return _hostname(authority)


def same_site(site: str, host: str) -> bool:
    """True when ``site`` is ``host`` (port ignored) or one is a subdomain of the other."""
    name = _hostname(host)
    return site == name or site.endswith("." + name) or name.endswith("." + site)


def _hostname(authority: str) -> str:
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority.partition("]")[0] + "]"
    return authority.partition(":")[0].rstrip(".")


register(SessionCookie)
register(SessionFixation)
