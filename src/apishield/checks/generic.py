"""Generic application-level injection (the OWASP CRS 934 family).

* Node.js code injection: ``child_process``, ``process.mainModule``, ``Module._load``,
  the ``Function`` constructor reached through ``constructor.constructor``, the
  ``_$$ND_FUNC$$_`` marker of node-serialize, React Server Components references
  (``$1:__proto__:then``), and bracket access to ``process``/``require``.
* Prototype pollution: ``__proto__`` and ``constructor.prototype`` as keys, key paths
  (``a[__proto__][x]``, ``__proto__.x=``) or JSON members; mentioned in prose only
  at ``strict``, where a JavaScript tutorial may write ``obj.__proto__``.
* Perl ``@{[ ... ]}`` interpolation and Ruby process APIs (``Kernel.exec``,
  ``IO.popen``, ``%x(...)``).
* JavaScript denial of service and time delays: a loop with a constant condition and
  no body, or one that only waits for the clock (``do{b=new Date()}while(b-a<9999)``).
* PHP code hidden in ``data:`` URIs; a bare text ``data:`` URI only at ``strict``.
* ORM lookup injection: Django-style filter keys that traverse relations to a secret
  field (``user__password__startswith``) or through four or more relations; single
  lookups (``price__gte``) are what django-filter offers honest clients.

Values that are base64 of such payloads (``XyQkTkRf...`` is ``_$$ND_FUNC$$_``) are
found by case-sensitive signatures for the base64 spellings of their telling
tokens at all three alignments, decoded and judged again.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Final

import hyperscan

from apishield.checks import ValueCheck, register
from apishield.findings import Finding, Source
from apishield.inputs import InputValue
from apishield.normalize import canonical
from apishield.signatures import (
    BEGIN,
    END,
    Hit,
    Signature,
    register_check_signatures,
    register_signatures,
)

Judgement = tuple[str, str, int]  # kind, evidence, score
STRICT_SCORE: Final = 60

_KEY_SOURCES: Final = frozenset(
    {Source.JSON_KEY, Source.QUERY_KEY, Source.FORM_KEY, Source.COOKIE_KEY, Source.MULTIPART_NAME}
)
_CONSTRUCTOR_PROTOTYPE: Final = r"\bconstructor['\"`]?\s*\]?\s*(?:\.|\[)\s*['\"`]?prototype\b"
# A prototype reached as a key path or assignment, not merely named.
_POLLUTING: Final = re.compile(
    r"(?:^|[?&;\s])\s*(?:__proto__|constructor\s*(?:\.|\[)\s*prototype)\s*[\[.=\]]"
    r"|[\"'`]__proto__[\"'`]\s*[:\]]|\[\s*[\"'`]?(?:__proto__|prototype)[\"'`]?\s*\]"
    r"|__proto__\s*(?:\.\s*[\w$]+|\[[^\]]*\])+\s*=(?!=)",
    re.IGNORECASE,
)
_MENTION: Final = re.compile(rf"__proto__|{_CONSTRUCTOR_PROTOTYPE}", re.IGNORECASE)
_TRUTHY: Final = (
    r"(?:!\s*)*(?:true|false|null|undefined|NaN|[+-]?(?:Infinity|\d+)|this|String"
    r"|new\s+[a-z_$][\w$]*|\"\"|''|``|\[\]|\{\})"
)
# A reading of the clock: what a busy wait spins on until enough time has passed.
_CLOCK: Final = (
    r"(?:\+\s*)?\(?\s*new\s+Date\b\s*(?:\(\s*\))?\s*\)?(?:\s*\.\s*(?:getTime|valueOf)\s*\(\s*\))?"
    r"|\bDate\s*\.\s*now\s*\(\s*\)|\bperformance\s*\.\s*now\s*\(\s*\)"
)
_READS_CLOCK: Final = re.compile(_CLOCK, re.IGNORECASE)
# A loop that only waits: an empty body under a short condition (that must read the
# clock), or a do-body that does nothing but read it. Honest code sleeps with a timer.
# Linear: the condition is bounded and cannot run past a ; or a brace.
_WAIT_LOOP: Final = re.compile(
    r"\bwhile\s*\((?P<condition>[^;{}]{0,80}?)\)\s*(?:;|\{\s*\}|$)"
    rf"|\bdo\s*\{{\s*(?:(?:var|let|const)\s+)?[\w$]+\s*=\s*(?:{_CLOCK})\s*;?\s*\}}\s*while\s*\(",
    re.IGNORECASE,
)
_LOOKUPS: Final = (
    "i?startswith|i?endswith|i?contains|i?exact|i?regex|isnull|gte?|lte?|in|range|search"
    "|has_keys?|has_any_keys|contained_by|overlap"
)
_STRING_LOOKUPS: Final = frozenset(
    {"startswith", "istartswith", "endswith", "iendswith", "contains", "icontains"}
    | {"regex", "iregex"}
)
_ORM_KEY: Final = re.compile(rf"[a-z0-9]\w*?(?:__[a-z0-9]\w*?)*__(?:{_LOOKUPS})\b", re.IGNORECASE)
_SECRET_FIELD: Final = re.compile(
    r"password|passwd|pwd|secret|token|hash|salt|otp|apikey|api_key|private_key", re.IGNORECASE
)
_ORM_RELATIONS: Final = 4
_BASE64_RUN: Final = re.compile(r"[A-Za-z0-9+/_-]+=*")
_BASE64_CHAR: Final = re.compile(r"[A-Za-z0-9+/_-]")
_BASE64_LIMIT: Final = 8192
_DATA_URI: Final = re.compile(r"data:[^,\x00]{0,80}?;\s*base64\s*,\s*", re.IGNORECASE)
_PHP_CODE: Final = re.compile(
    r"<\?(?:php|=)|\b(?:system|passthru|shell_exec|exec|eval|assert|popen)\s*\(", re.IGNORECASE
)
# Telling tokens of payloads that arrive base64-encoded.
_BASE64_TOKENS: Final = (b"_FUNC$$_", b"child_process", b"require(", b"while(", b"__proto__")

register_check_signatures(
    "generic",
    (
        ("node_serialize", r"_\$\$ND_FUNC\$\$_", "node-serialize function marker", 95),
        ("funcster", r"\b__js_function\b", "funcster function marker", 80),
        (
            "child_process",
            r"\brequire\s*\(\s*['\"`]child_process['\"`]|\bchild_process\b[^\x00]*?\."
            r"\s*(?:exec|execSync|spawn|spawnSync|fork|execFile|execFileSync)\s*\(",
            "Node.js child_process",
            95,
        ),
        (
            "require_module",
            r"\brequire\s*\(\s*['\"`](?:vm|fs|net|dgram|worker_threads|module|inspector|cluster)"
            r"['\"`]\s*\)",
            "Node.js require of a system module",
            85,
        ),
        (
            "node_internals",
            r"\bprocess\s*\.\s*(?:mainModule|binding|dlopen|_linkedBinding)\b"
            r"|\b(?:constructor|Module)\s*\.\s*_load\s*\(|\brequire\s*\.\s*main\s*\.\s*constructor\b",
            "Node.js module internals",
            95,
        ),
        (
            "bracket_access",
            r"\b(?:process|require|global|globalThis)\s*\[\s*(?:['\"`](?:env|mainModule|binding"
            r"|dlopen|main|cache|constructor)['\"`]|req\b|mainModule\b)",
            "bracket access to a Node.js global",
            85,
        ),
        (
            "function_constructor",
            r"\.\s*constructor\s*\.\s*constructor\b|\bconstructor\s*\.\s*constructor\s*\("
            r"|\[\s*['\"`]constructor['\"`]\s*\]\s*\[\s*['\"`]constructor['\"`]\s*\]",
            "Function constructor through an object",
            90,
        ),
        ("new_function", r"\bnew\s+Function\s*\(", "JavaScript Function constructor", 80),
        (
            "function_call",
            r"\bFunction\s*\(\s*['\"`][^\x00]*?['\"`]\s*\)\s*\(",
            "JavaScript Function constructor call",
            90,
        ),
        (
            "eval_decoded",
            r"\beval\s*\(\s*(?:String\s*\.\s*fromCharCode|atob|unescape|decodeURI(?:Component)?"
            r"|Buffer\s*\.\s*from)\b",
            "eval of decoded code",
            90,
        ),
        (
            "server_components",
            r"\$[0-9a-f]{1,8}:(?:[\w$]+:)*(?:__proto__|constructor|prototype)\b",
            "React Server Components prototype reference",
            90,
        ),
        ("process_env", r"\bprocess\s*\.\s*env\b", "Node.js environment access", 60, "strict"),
        (
            "console",
            r"\bconsole\s*(?:\.\s*\w+|\[\s*['\"`]\w+['\"`]\s*\])\s*(?:\.\s*(?:call|apply)\s*)?\(",
            "JavaScript console call",
            60,
            "strict",
        ),
        ("module_exports", r"\bmodule\s*\.\s*exports\s*=", "CommonJS export", 60, "strict"),
        ("proto", r"__proto__", "prototype pollution", 0),
        ("constructor_prototype", _CONSTRUCTOR_PROTOTYPE, "prototype pollution", 0),
        ("prototype_key", rf"{BEGIN}\s*prototype\s*{END}", "prototype key", 0),
        ("perl_interpolation", r"@+\{\s*\[", "Perl code interpolation", 90),
        (
            "ruby_process",
            r"\b(?:Process\s*\.\s*spawn|Kernel\s*\.\s*(?:exec|system|spawn|open|eval|fork)"
            r"|IO\s*\.\s*popen|Open3\s*\.\s*(?:popen[23]?e?|capture[23]e?|pipeline\w*)"
            r"|PTY\s*\.\s*spawn)(?:\s*\(|\s+['\"%])",
            "Ruby process execution",
            90,
        ),
        (
            "ruby_send",
            r"\.\s*(?:send|public_send|__send__)\s*\(\s*:(?:system|exec|spawn|eval|instance_eval"
            r"|class_eval|`)",
            "Ruby dynamic call of a process method",
            90,
        ),
        (
            "command_literal",
            rf"(?:{BEGIN}|[\s;=(`'\"])%x[({{\[|]\s*[a-z/]",
            "Ruby/Perl command literal",
            80,
        ),
        (
            "infinite_loop",
            rf"\b(?:while\s*\(\s*(?:\(\s*)*{_TRUTHY}\s*(?:\)\s*)*\)|for\s*\(\s*;\s*;\s*\))"
            rf"\s*(?:;|\{{\s*\}}|\)|{END})",
            "JavaScript infinite loop",
            85,
        ),
        ("loop", r"\bwhile\s*\(", "JavaScript loop", 0),
        ("data_uri_base64", r"data:[\w.+/=;-]*;\s*base64\s*,", "base64 data: URI", 0),
        (
            "data_uri_text",
            rf"{BEGIN}\s*data:(?:text/plain|text/x-php|application/x-(?:httpd-)?php)\b",
            "data: URI of text for an include",
            60,
            "strict",
        ),
        ("orm_lookup", rf"[a-z0-9]__(?:{_LOOKUPS})\b", "ORM lookup key", 0),
    ),
)


def _base64_spellings(token: bytes) -> list[str]:
    """The base64 characters that spell ``token`` at each of the three alignments."""
    spellings = []
    for offset in range(3):
        encoded = base64.b64encode(bytes(offset) + token).decode()
        start = -(-8 * offset // 6)
        spellings.append(re.escape(encoded[start : 8 * (offset + len(token)) // 6]))
    return spellings


register_signatures(
    [
        Signature(
            "generic.base64",
            "generic",
            "|".join(s for token in _BASE64_TOKENS for s in _base64_spellings(token))
            + rf"|{BEGIN}\s*XHUwM[DE]",  # a base64 value starting with "\u00"
            "base64-encoded payload",
            0,
            flags=hyperscan.HS_FLAG_SOM_LEFTMOST | hyperscan.HS_FLAG_DOTALL,
        )
    ]
)


class GenericInjection(ValueCheck):
    """Node.js, Perl and Ruby code injection, prototype pollution, JavaScript DoS loops,
    PHP in data: URIs and ORM lookup injection."""

    id = "generic"
    rescans = True  # base64-decoded values
    category = "injection"
    title = "Code injection"
    description = (
        "Node.js/Perl/Ruby code, prototype pollution, DoS loops and ORM lookups in request values"
    )
    inspects_plain = True  # "__proto__" and "user__password__startswith" are plain keys

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        best = self.judge(value, hits)
        if best is None or (best[2] <= STRICT_SCORE and not self.strict):
            return None
        return self.found(value, *best)

    def judge(self, value: InputValue, hits: Sequence[Hit]) -> Judgement | None:
        """The most telling of ``hits`` in ``value``, gates resolved by their analysis."""
        best: Judgement | None = None
        for hit in hits:
            name = hit.signature.name.partition(".")[2]
            judged: Judgement | None
            if hit.signature.score:
                judged = (hit.signature.label, hit.evidence, hit.signature.score)
            elif name == "base64":
                judged = self._decoded(value, hit)
            else:
                judged = _GATES[name](value, hit)
            if judged is not None and (best is None or judged[2] > best[2]):
                best = judged
        return best

    def _decoded(self, value: InputValue, hit: Hit) -> Judgement | None:
        """Judge the base64 run around ``hit`` decoded (once: no base64 inside base64)."""
        text = value.text
        start = hit.end  # a gate's hit is the end of its match
        while start > 0 and _BASE64_CHAR.fullmatch(text[start - 1]):
            start -= 1
        decoded = _decode_base64(text, start)
        if not decoded:
            return None
        decoded = canonical(decoded)
        inner = [h for h in self.signature_set.scan(decoded) if h.signature is not hit.signature]
        judged = self.judge(InputValue(value.location, value.raw, decoded), inner)
        if judged is None:
            return None
        return f"base64-encoded {judged[0]}", judged[1], judged[2]


def _pollution(value: InputValue, hit: Hit) -> Judgement | None:
    return prototype_pollution(value)


def _orm(value: InputValue, hit: Hit) -> Judgement | None:
    return orm_lookup(value.text) if value.location.source in _KEY_SOURCES else None


def _data_uri(value: InputValue, hit: Hit) -> Judgement | None:
    """PHP code in the base64 content of a ``data:`` URI (what a PHP include would run)."""
    for match in _DATA_URI.finditer(value.text):
        code = _PHP_CODE.search(_decode_base64(value.text, match.end()))
        if code is not None:
            return "PHP code in a data: URI", match.group(0).strip() + code.group(0), 90
    return None


def _busy_wait(value: InputValue, hit: Hit) -> Judgement | None:
    """A JavaScript loop that does nothing but wait for the clock (a time delay)."""
    for loop in _WAIT_LOOP.finditer(value.text):
        condition = loop.group("condition")
        if condition is None or _READS_CLOCK.search(condition) is not None:
            return "JavaScript busy-wait loop", loop.group(0).strip(), 85
    return None


_GATES: dict[str, Callable[[InputValue, Hit], Judgement | None]] = {
    "loop": _busy_wait,
    "proto": _pollution,
    "constructor_prototype": _pollution,
    "prototype_key": _pollution,
    "orm_lookup": _orm,
    "data_uri_base64": _data_uri,
}


def prototype_pollution(value: InputValue) -> Judgement | None:
    """``__proto__``/``constructor.prototype`` used as a key path, else merely named."""
    text = value.text
    if value.location.source is Source.JSON_KEY and text.strip().lower() == "prototype":
        parent = value.location.name.rsplit("/", 2)[-2:-1]
        if parent and parent[0].lower() == "constructor":
            return "prototype pollution", "constructor/prototype", 90
        return None
    mention = _MENTION.search(text)
    if mention is None:
        return None
    if value.location.source in _KEY_SOURCES:
        return "prototype pollution key", text[:120], 90
    polluting = _POLLUTING.search(text)
    if polluting is not None:
        return "prototype pollution", polluting.group(0).strip(), 90
    return "prototype mentioned", mention.group(0), STRICT_SCORE


def orm_lookup(key: str) -> Judgement | None:
    """Django-style ``field__relation__lookup`` keys that reach a secret or go deep."""
    best: Judgement | None = None
    for match in _ORM_KEY.finditer(key):
        *fields, lookup = match.group(0).split("__")
        lookup = lookup.lower()
        if any(_SECRET_FIELD.search(f) for f in fields):
            judged: Judgement = ("ORM lookup on a secret field", match.group(0), 85)
        elif len(fields) >= _ORM_RELATIONS:
            judged = ("ORM relation traversal", match.group(0), 75)
        elif len(fields) >= 2 and lookup in _STRING_LOOKUPS:
            judged = ("ORM lookup through a relation", match.group(0), STRICT_SCORE)
        else:
            continue
        if best is None or judged[2] > best[2]:
            best = judged
    return best


def _decode_base64(text: str, start: int) -> str:
    """The base64 run of ``text`` starting at ``start`` decoded as text ('' if it is not)."""
    run = _BASE64_RUN.match(text, start)
    if run is None:
        return ""
    data = run.group(0)[:_BASE64_LIMIT].rstrip("=").translate(_URLSAFE)
    data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
    try:
        raw = base64.b64decode(data + "=" * (-len(data) % 4))
    except (binascii.Error, ValueError):
        return ""
    return raw.decode("utf-8", "replace")


_URLSAFE: Final = str.maketrans("-_", "+/")


register(GenericInjection)
