"""Path traversal and local file inclusion: ``../`` climbs, sensitive files, wrappers.

Values are canonicalised first: leftover percent-encoding (double encoding),
overlong UTF-8 and %u forms of ``.``, ``/`` and ``\\`` are decoded, and
backslashes become slashes, so ``..%252f`` and ``..\\`` read as ``../``. A ``%``
that starts no escape before a separator is dropped, as lenient servers do
(``%\\..%\\..``), and so are path parameters of dot segments, as Tomcat does
(``..;/``, ``..;x/``, ``.;/``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from apishield.checks import ValueCheck, register
from apishield.findings import Finding
from apishield.inputs import InputValue
from apishield.normalize import percent_decode
from apishield.signatures import (
    BEGIN,
    END,
    Hit,
    best_of,
    register_check_signatures,
)

_DECODE_ROUNDS: Final = 2
_ENCODED_ALIASES: Final = {
    "%c0%ae": ".",
    "%e0%80%ae": ".",
    "%c0%af": "/",
    "%e0%80%af": "/",
    "%c1%9c": "/",
    "%c0%5c": "/",
    "%u002e": ".",
    "%u002f": "/",
    "%u005c": "/",
    "%u2215": "/",
    "%u2216": "/",
    "%uff0e": ".",
}
_ENCODED_ALIAS: Final = re.compile("|".join(re.escape(a) for a in _ENCODED_ALIASES), re.IGNORECASE)
# Separators read as the ASCII ones, and NUL dropped; one ``str.replace`` each (C
# ``memchr`` speed), where ``str.translate`` with a table looks up every character.
_SEPARATOR_FOLDS: Final = (
    ("\\", "/"),
    ("\uff0e", "."),
    ("\uff0f", "/"),
    ("\u2215", "/"),
    ("\x00", ""),
)
# The non-ASCII characters :data:`_SEPARATOR_FOLDS` folds: NFKC in canonical texts folds the
# fullwidth ones, but a second percent-decoding can bring them back (``%25EF%25BC%258F``).
_UNICODE_SEPARATORS: Final = ("\uff0e", "\uff0f", "\u2215")
# ``0x2e``/``0x2f``/``0x5c`` spelled out for ``.``, ``/`` and ``\`` (``0x5c0x2e./``).
_HEX_ALIAS: Final = re.compile(r"0x(2e|2f|5c)", re.IGNORECASE)
_STRAY_PERCENT: Final = re.compile(r"%(?=[/\\])")
# A dot segment's path parameter, up to the next separator: ``..;jsessionid=1/``.
_DOT_PARAMETER: Final = re.compile(r"(?:^|(?<=[/\s=:'\"]))(\.\.?);[^/\s]*")
# A UNC path to a share of the machine itself: its files, through the SMB loopback.
# Loose spellings, and no anchor before the slashes: either costs 0.7 MB of hyperscan state.
_LOOPBACK_HOST: Final = r"(?:localhost|127\.[\d.]+|\[?[0:]+1\]?|[0-]+1\.ipv6-literal\.net)"

register_check_signatures(
    "traversal",
    (
        ("climb_deep", r"(?:\.{2,}/+){2,}", "repeated ../ climb", 90),
        ("hex_gate", r"0x(?:2e|2f|5c)(?:0x(?:2e|2f|5c)|[./\\%])", "hex-spelled dot or slash", 0),
        ("climb", rf"(?:{BEGIN}|[/=:\s'\"])\.{{2,}}/|/\.\.{END}", "../ climb", 60),
        (
            "unix_file",
            r"/etc/(?:passwd|shadow|group|gshadow|hosts|hostname|issue|sudoers|crontab|fstab"
            r"|motd|profile|environment|subuid|subgid)\b|/proc/(?:self|\d+)/(?:environ|cmdline|fd"
            r"|maps|status|cwd|root|mem|exe)\b|/proc/(?:sys|net)/[a-z]|/proc/(?:interrupts"
            r"|cpuinfo|meminfo|mounts|version|kallsyms)\b|/etc/(?:apache2|httpd|nginx)/[\w./-]*"
            r"\.conf\b",
            "sensitive file",
            90,
        ),
        (
            "windows_file",
            r"\b(?:win|system|boot)\.ini\b|\b[a-z]:/+(?:windows|winnt)/"
            r"|/(?:windows|winnt)/+(?:system32|win\.ini)",
            "Windows system file",
            90,
        ),
        (
            "obfuscated_file",
            r"etc[^\s-]{1,8}?(?:passwd|shadow|issue)\b|(?:win|boot)\.ini\b"
            r"|system32.{1,8}?drivers.{1,8}?etc.{1,8}?hosts\b",
            "sensitive file name",
            80,
        ),
        (
            "secret_file",
            r"/\.(?:htaccess|htpasswd|git/(?:config|HEAD)|aws/credentials)\b"
            rf"|(?:{BEGIN}|[/=\s])\.ssh/(?:id_\w+|authorized_keys)\b|/\.env{END}|/web\.config\b"
            r"|/\.(?:docker|kube)/(?:config|secrets)\b"
            # coding agents' settings, which hold API keys and tool permissions
            r"|/\.(?:claude|cursor|continue|aider|roo|zed|cline|kiro|windsurf|rovodev|codex"
            r"|opencode|a0proj|plandex|fabric|n8n|junie)/",
            "secret file",
            75,
        ),
        (
            "loopback_share",
            rf"//{_LOOPBACK_HOST}/+(?:[a-z]|admin|ipc)\$(?:/|{END})",
            "UNC path to a local share",
            85,
        ),
        (
            "wrapper",
            r"\b(?:php://(?:filter|input|stdin|memory|temp|fd)|phar://|zip://"
            r"|expect://|glob://|compress\.(?:zlib|bzip2)://|data://)",
            "stream wrapper",
            85,
        ),
        (
            "file_uri",
            r"\bfile:/+(?:localhost/+)?(?:[a-z]:|etc|proc|windows|winnt|boot|root|var|dev|sys"
            rf"|\.\.|~|{END})",
            "file URI to a system path",
            85,
        ),
    ),
)


class PathTraversal(ValueCheck):
    """Directory traversal, sensitive file paths and stream wrappers in request values."""

    id = "traversal"
    rescans = True  # the canonical path
    category = "path_traversal"
    title = "Path traversal"
    description = "Path traversal and local file inclusion in any request value"
    inspects_plain = True  # "..0x2f..0x2fetc0x2fpasswd" looks plain

    def wants(self, text: str) -> bool:
        """Values with encodings, backslashes, ``..;`` or Unicode slashes: rescanned canonical."""
        return "%" in text or "\\" in text or "..;" in text or _has_unicode_separator(text)

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        text = value.text
        canonical = canonical_path(text)
        hit, _ = best_of(hits) if canonical == text else self.signature_set.best(canonical)
        if hit is None:
            return None
        return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)


def canonical_path(text: str) -> str:
    """``text`` with path encodings undone and backslashes turned into slashes."""
    for _ in range(_DECODE_ROUNDS):
        if "%" not in text:
            break
        text = percent_decode(_ENCODED_ALIAS.sub(_alias, text))
    if "0x" in text or "0X" in text:
        text = _HEX_ALIAS.sub(lambda m: "." if m.group(1).lower() == "2e" else "/", text)
    if "%" in text:
        text = _STRAY_PERCENT.sub("", text)
    for separator, folded in _SEPARATOR_FOLDS:
        if separator in text:
            text = text.replace(separator, folded)
    if ".;" in text:
        text = _DOT_PARAMETER.sub(r"\1", text)
    return text


def _has_unicode_separator(text: str) -> bool:
    return not text.isascii() and any(separator in text for separator in _UNICODE_SEPARATORS)


def _alias(match: re.Match[str]) -> str:
    return _ENCODED_ALIASES[match.group(0).lower()]


register(PathTraversal)
