"""Remote file inclusion: URLs that make a server fetch and run someone else's code.

What counts at ``balanced``: a URL to a bare IP address that names a server script
(``http://203.0.113.7/shell.php``); a URL to a script or text file ending in ``?``,
the trick that cuts off the suffix an include appends (``.../shell.txt?``); schemes
no honest parameter carries (``gopher://``, ``dict://``, ``jar:``, ``local_file:``,
``netdoc:``); an authority hidden behind an encoded slash (``http://a.com%2f@evil/``,
a parser-confusion trick); parameter names that overwrite PHP superglobals or the
configuration globals of old register_globals exploits (``_SERVER[DOCUMENT_ROOT]``,
``mosConfig_absolute_path``). Plain URLs in parameters are everyday API data (web
hooks, avatars, redirects): a URL to an IP address or one ending in ``?`` counts at
``strict`` only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from apishield.checks import ValueCheck, register
from apishield.findings import Finding, Source
from apishield.inputs import InputValue
from apishield.signatures import BEGIN, END, Hit, best_of, register_check_signatures

_IP_HOST: Final = (
    r"(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-f:.]+\]|[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7}"
    r"(?:\.\d{1,3}){0,3})"
)
_SCRIPT: Final = r"\.(?:php\d?|phtml|inc|txt|asp|aspx|jsp|pl|cgi|py|sh|exe)"
_URL: Final = r"\s*(?:https?|ftps?)://"
_KEY_SOURCES: Final = frozenset(
    {Source.QUERY_KEY, Source.FORM_KEY, Source.JSON_KEY, Source.COOKIE_KEY}
)
# An encoded slash or backslash in the authority, before an '@': the host is elsewhere.
_HIDDEN_AUTHORITY: Final = re.compile(
    r"\s*[a-z][a-z\d+.-]*:(?://|%2f%2f)[^/?#@]*%(?:25)?(?:2f|5c)[^/?#]*@", re.I
)

register_check_signatures(
    "rfi",
    (
        (
            "ip_script",
            rf"{BEGIN}{_URL}(?:[^/?#\s@\x00]*@)?{_IP_HOST}(?::\d+)?/[^?#\s\x00]*{_SCRIPT}\b",
            "script on a bare IP address",
            80,
        ),
        (
            "truncated_script",
            rf"{BEGIN}{_URL}[^?#\s\x00]+{_SCRIPT}(?:\?+|%00|\x00){END}",
            "script URL with its suffix cut off",
            80,
        ),
        (
            "scheme",
            rf"{BEGIN}\s*(?:gopher|dict|netdoc|local_file|jar\s*:\s*(?:https?|ftp|file))\s*:",
            "fetching URL scheme",
            80,
        ),
        (
            "superglobal",
            rf"{BEGIN}(?:_(?:server|env|session|cookie|get|post|request|files|conf)\s*\["
            r"|globals\s*\[|mosconfig_[a-z_]+|gallery_basedir|appserv_root"
            rf"|path\[docroot\]|config\[root_dir\])",
            "PHP global overwritten by a parameter",
            70,
        ),
        ("authority_gate", rf"{BEGIN}\s*[a-z][a-z\d+.-]*://[^\s\x00]*@", "URL with an @", 0),
        ("ip_url", rf"{BEGIN}{_URL}{_IP_HOST}(?:[:/]|{END})", "URL to an IP address", 55, "strict"),
        ("trailing_query", rf"{BEGIN}{_URL}[^\s\x00]+?\?+{END}", "URL ending in ?", 55, "strict"),
        ("ldap", rf"{BEGIN}\s*ldaps?://", "LDAP URL", 55, "strict"),
    ),
)


class RemoteFileInclusion(ValueCheck):
    """Remote file inclusion and fetching-scheme URLs in request values."""

    id = "rfi"
    category = "file_inclusion"
    title = "Remote file inclusion"
    description = "URLs that make the server fetch remote code, in any request value"
    inspects_plain = True  # "mosConfig_absolute_path" is a plain parameter name

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        hit, gated = best_of(hits)
        if hit is not None and hit.signature.name == "rfi.superglobal":
            hit = hit if value.location.source in _KEY_SOURCES else None
            if hit is None:
                hit, _ = best_of([h for h in hits if h.signature.name != "rfi.superglobal"])
        if hit is not None:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        if gated and _HIDDEN_AUTHORITY.match(value.raw):
            return self.found(value, "authority behind an encoded slash", value.raw[:120], 75)
        return None


register(RemoteFileInclusion)
