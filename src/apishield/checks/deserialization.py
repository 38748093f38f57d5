"""Deserialization: serialized objects a client sends for the server to rebuild.

Formats whose decoding runs code chosen by the sender: Python pickles (raw, text
protocol 0, or base64), Java serialization streams (raw, hex, base64, gzip+base64),
PHP ``O:``/``C:`` objects, .NET BinaryFormatter streams and gadget types, YAML tags
that construct language objects, Ruby Marshal streams with gadget classes, and
node-serialize functions.

Signatures select candidates; the value is then read the way its format is read.
Base64 is decoded only for tokens a gate selects, at most :data:`MAX_TOKEN` chars.
Pickles are never unpickled: :func:`pickle_imports` walks the opcodes
(``pickletools.genops``) and reports what the pickle would import and whether it
would call it. Importing a known-dangerous callable (``builtins eval``, ``os
system``, ...) is block-worthy; a pickle that only rebuilds objects of other
classes is what apps with pickled cookies send honestly, so it counts at
``strict``. Plain data pickles (no import) are not reported.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import pickletools
import re
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Final, NamedTuple
from urllib.parse import unquote_to_bytes

import hyperscan

from apishield.checks import ValueCheck, register, word_set
from apishield.findings import Finding
from apishield.inputs import InputValue
from apishield.normalize import canonical
from apishield.signatures import (
    BEGIN,
    END,
    Hit,
    Signature,
    best_of,
    register_check_signatures,
    register_signatures,
)

CHECK: Final = "deserialization"
MAX_TOKEN: Final = 16384  # base64/hex characters decoded per token, at most
_MAX_OPCODES: Final = 4096
_B64_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
_B64_TOKEN: Final = re.compile(r"[A-Za-z0-9+/_-]+")
_HEX_TOKEN: Final = re.compile(r"[0-9a-fA-F]+")
_URLSAFE: Final = str.maketrans("-_", "+/")
_JAVA_MAGIC: Final = b"\xac\xed\x00\x05"
_JAVA_CLASS: Final = re.compile(rb"[\x72\x7d]\x00([\x01-\x7f])([A-Za-z_$][\w$.\[;/]*)")
_BINARY_FORMATTER: Final = b"\x00\x01\x00\x00\x00\xff\xff\xff\xff"
_PHP_OBJECT: Final = re.compile(
    r"(?<![\w:])([OC]):(\+?)(\d{1,4}):\"([A-Za-z_\\][\w\\]{0,200})\":\d+:\{"
)
_NODE_FUNCTION: Final = b"_$$ND_FUNC$$_"
_PICKLE_TEXT: Final = rf"(?:{BEGIN}|[(\n.])\(?[ci][a-z_][\w.]*\n[a-z_]\w*\n"  # GLOBAL/INST lines
_MAX_CANDIDATES: Final = 4  # places a gate's pattern is looked for again in one value
_GZIP_PEEK: Final = 64  # decompressed bytes looked at: enough for a magic and a class name


# Python callables whose import by a pickle runs code (module: its dangerous names, None = all).
_PY_DANGEROUS: dict[str, frozenset[str] | None] = {
    **dict.fromkeys(
        word_set(
            "os posix nt subprocess commands pty sys socket shutil importlib runpy code codeop"
            " ctypes marshal pickle _pickle cPickle types webbrowser platform multiprocessing"
            " pdb timeit popen2 imp"
        )
    ),
    **dict.fromkeys(
        ("builtins", "__builtin__"),
        word_set(
            "eval exec execfile compile __import__ getattr setattr delattr open input globals"
            " locals vars apply breakpoint file reload"
        ),
    ),
    "operator": word_set("attrgetter methodcaller"),
    "functools": word_set("partial"),
    "io": word_set("open FileIO"),
    "codecs": word_set("open"),
}
_PY_CALLS: Final = word_set("REDUCE INST OBJ NEWOBJ NEWOBJ_EX BUILD")
_PY_STRINGS: Final = word_set(
    "STRING BINSTRING SHORT_BINSTRING UNICODE BINUNICODE SHORT_BINUNICODE BINUNICODE8"
)
# Ruby classes whose Marshal.load runs code (universal RubyGems and Rails gadget chains).
_RUBY_GADGETS: Final = re.compile(
    rb"Gem::(?:Requirement|Installer|SpecFetcher|StubSpecification|Package::TarReader|RequestSet"
    rb"|Source::Git|Resolver)|Net::(?:BufferedIO|WriteAdapter)|ActiveSupport::Deprecation::"
    rb"DeprecatedInstanceVariableProxy|ActiveModel::AttributeMethods|\bERB\b"
)

register_check_signatures(
    CHECK,
    (
        # at the start only: binary data (compressed bodies) holds these bytes by chance
        ("java_raw", rf"{BEGIN}\xc2\xac\xc3\xad\x05", "Java serialized object", 90),
        (
            "java_hex",
            rf"(?:{BEGIN}|[^0-9a-z]|0x)aced0005(?:7[0-9a-e]|{END})",
            "Java serialized object (hex)",
            90,
        ),
        ("php_object", r"[OC]:\+?\d+:\"[a-z_\\][\w\\]*\":\d+:\{", "PHP serialized object", 0),
        (
            "yaml_python",
            r"!!python/(?:object|name|module)\b|tag:yaml\.org,2002:python/(?:object|name|module)\b",
            "YAML Python object tag",
            95,
        ),
        (
            "yaml_ruby",
            r"!ruby/(?:object|hash|struct|marshal|class|module):",
            "YAML Ruby object tag",
            90,
        ),
        (
            "yaml_java",
            rf"(?:{BEGIN}|[\s\[{{:,-])!!(?:[a-z_$][\w$]*\.){{2,}}[a-z_$][\w$]*(?:[\s\[{{]|{END})",
            "YAML Java class tag",
            90,
        ),
        ("node_serialize", r"_\$\$ND_FUNC\$\$_", "node-serialize function", 95),
        (
            "dotnet_type",
            r"\bSystem\.(?:Windows\.Data\.ObjectDataProvider|Windows\.Markup\.XamlReader"
            r"|Diagnostics\.Process(?:StartInfo)?\b|Configuration\.Install\.AssemblyInstaller"
            r"|Activities\.Presentation\.WorkflowDesigner|Windows\.Forms\.BindingSource"
            r"|Security\.Principal\.WindowsIdentity|Web\.Security\.RolePrincipal"
            r"|Data\.Services\.Internal\.ExpandedWrapper|Management\.Automation\.PSObject"
            r"|IdentityModel\.Tokens\.SessionSecurityToken)",
            ".NET deserialization gadget type",
            90,
        ),
        ("pickle_raw", r"\xc2\x80[\x02-\x05]", "Python pickle", 0),
        ("pickle_text", _PICKLE_TEXT, "Python pickle", 0),
    ),
)


def b64_fragments(keyword: bytes) -> Iterator[str]:
    """The parts of ``keyword``'s base64 that are the same at each of its 3 byte alignments."""
    for offset in range(3):
        encoded = base64.b64encode(b"\x00" * offset + keyword).decode()
        yield encoded[(0, 2, 3)[offset] : (8 * (offset + len(keyword))) // 6]


# Base64 markers are case-sensitive: "rO0AB" is a Java stream, "ro0ab" is not.
_EXACT: Final = hyperscan.HS_FLAG_SOM_LEFTMOST | hyperscan.HS_FLAG_DOTALL
_B64_START: Final = rf"(?:{BEGIN}|[^A-Za-z0-9+/_-])"
_B64_GATES: Final = (  # the patterns read the same to hyperscan and to Python's re
    ("b64_java", "|".join(b64_fragments(_JAVA_MAGIC)), "Java serialized object (base64)"),
    ("b64_pickle", rf"{_B64_START}gA[JNRSU][A-Za-z0-9+/_-]{{8}}", "Python pickle (base64)"),
    ("b64_dotnet", rf"AAEAAAD/////|{_B64_START}/wEy", ".NET BinaryFormatter (base64)"),
    ("b64_ruby", rf"{_B64_START}BAh[A-Za-z0-9+/_-]{{8}}", "Ruby Marshal (base64)"),
    ("b64_gzip", rf"{_B64_START}H4sI[A-Za-z0-9+/_-]{{8}}", "gzip (base64)"),
    ("b64_node", "|".join(b64_fragments(_NODE_FUNCTION)), "node-serialize (base64)"),
)
register_signatures(
    Signature(f"{CHECK}.{name}", CHECK, pattern, label, 0, flags=_EXACT)
    for name, pattern, label in _B64_GATES
)


class Judgement(NamedTuple):
    """What a decoder recognised: kind, evidence and score."""

    kind: str
    evidence: str
    score: int


class PickleReading(NamedTuple):
    """What walking a pickle's opcodes showed (nothing is unpickled)."""

    imports: tuple[str, ...]  # "module name" of each GLOBAL/STACK_GLOBAL/INST
    calls: bool  # a REDUCE/INST/OBJ/NEWOBJ/BUILD opcode applies something
    complete: bool  # the walk reached STOP without an error


def pickle_imports(data: bytes) -> PickleReading:
    """Walk ``data`` as a pickle: the callables it imports and whether it calls one.

    Stops at the first opcode that does not parse; STACK_GLOBAL names are taken from
    the strings pushed before it (also through the memo).
    """
    imports: list[str] = []
    strings: list[str] = []
    memo: dict[int, str | None] = {}
    calls = False
    last: str | None = None
    try:
        for count, (opcode, arg, _) in enumerate(pickletools.genops(data)):
            name = opcode.name
            if count >= _MAX_OPCODES or name == "STOP":
                return PickleReading(tuple(imports), calls, name == "STOP")
            pushed: str | None = None
            if name in ("GLOBAL", "INST"):
                imports.append(str(arg))
            elif name == "STACK_GLOBAL" and len(strings) >= 2:
                imports.append(f"{strings[-2]} {strings[-1]}")
            elif name in _PY_STRINGS:
                pushed = arg if isinstance(arg, str) else bytes(arg or b"").decode("latin-1")
            elif name == "MEMOIZE":
                memo[len(memo)] = last
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[int(arg or 0)] = last
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                pushed = memo.get(int(arg or 0))
            if pushed is not None:
                strings.append(pushed)
            calls = calls or name in _PY_CALLS
            last = pushed if pushed is not None else (last if name.endswith("PUT") else None)
    except (ValueError, struct.error):
        pass
    return PickleReading(tuple(imports), calls, False)


def is_dangerous_callable(imported: str) -> bool:
    """True for ``"module name"`` pairs whose call runs code or touches the system."""
    module, _, name = imported.partition(" ")
    allowed = _PY_DANGEROUS.get(module.partition(".")[0], frozenset())
    return allowed is None or name.partition(".")[0] in allowed


def judge_pickle(data: bytes) -> Judgement | None:
    """A finding for a pickle that imports something, None for data-only or non-pickles."""
    reading = pickle_imports(data)
    dangerous = [i for i in reading.imports if is_dangerous_callable(i)]
    if dangerous and (reading.calls or reading.complete):
        score = 95 if reading.calls else 80
        return Judgement("pickle importing a dangerous callable", dangerous[0], score)
    if reading.imports and reading.calls and reading.complete:
        return Judgement("pickle rebuilding objects", reading.imports[0], 70)
    return None


def b64_decode(token: str) -> bytes:
    """``token`` decoded as base64 (standard or URL-safe, padding optional), leniently."""
    text = token.translate(_URLSAFE).rstrip("=")[:MAX_TOKEN]
    text = text[: len(text) - (len(text) % 4 == 1)]
    try:
        return binascii.a2b_base64(text + "=" * (-len(text) % 4))
    except binascii.Error:
        return b""


def b64_alignments(token: str) -> Iterator[bytes]:
    """``token`` decoded at the 4 alignments it may have had inside a longer base64 text.

    A token cut from the middle of base64 text starts at any of 4 positions of its
    4-character group; prefixing 0-3 ``A`` (zero bits) restores each alignment.
    """
    for shift in range(4):
        yield b64_decode("A" * shift + token)


def token_at(text: str, position: int, chars: frozenset[str] = _B64_CHARS) -> str:
    """The run of ``chars`` in ``text`` that contains (or starts at) ``position``."""
    start = position
    while start > 0 and text[start - 1] in chars:
        start -= 1
    end = position
    limit = min(len(text), start + MAX_TOKEN)
    while end < limit and text[end] in chars:
        end += 1
    return text[start:end]


def java_stream(data: bytes) -> Judgement | None:
    """A finding if ``data`` holds a Java serialization stream, naming its first class."""
    at = data.find(_JAVA_MAGIC)
    if at < 0:
        return None
    for match in _JAVA_CLASS.finditer(data, at + 4, at + 4096):
        name = match.group(2)[: match.group(1)[0]]
        if len(name) == match.group(1)[0]:
            return Judgement("Java serialized object", name.decode("ascii"), 90)
    return Judgement("Java serialized object", "stream header aced0005", 90)


def _b64_token(value: InputValue, match: re.Match[str]) -> str:
    """The base64 token a gate's match ends in (its pattern may begin with a delimiter)."""
    return token_at(value.text, match.end() - 1)


def _java_b64(value: InputValue, match: re.Match[str]) -> Judgement | None:
    for data in b64_alignments(_b64_token(value, match)):
        found = java_stream(data)
        if found is not None:
            return found
    return None


def _pickle_b64(value: InputValue, match: re.Match[str]) -> Judgement | None:
    return judge_pickle(b64_decode(_b64_token(value, match)))


def _pickle_raw(value: InputValue, match: re.Match[str]) -> Judgement | None:
    """A pickle in the text itself; binary ones also as they arrived (NULs kept)."""
    start = match.end() - len(match.group().lstrip("(\n.\x00"))
    found = judge_pickle(value.text[start : start + MAX_TOKEN].encode("latin-1", "replace"))
    if found is not None or not match.group().startswith("\x80"):
        return found
    arrived = _as_arrived(value.raw, match.group())
    return None if arrived is None else judge_pickle(arrived)


def _as_arrived(raw: str, marker: str) -> bytes | None:
    """Up to :data:`MAX_TOKEN` bytes of ``raw`` from ``marker`` on, percent-decoded.

    The marker is looked for as written and percent-encoded; only the window after it
    is decoded, straight to bytes (a pickle is bytes: no text decoding), so a large
    body costs one search, not a decoding per marker.
    """
    encoded = "".join(f"%{ord(char):02x}" for char in marker)
    places = [at for at in (raw.find(marker), raw.lower().find(encoded)) if at >= 0]
    if not places:
        return None
    window = raw[min(places) : min(places) + 3 * MAX_TOKEN].encode("latin-1", "replace")
    decoded = unquote_to_bytes(window) if b"%" in window else window
    at = decoded.find(marker.encode("latin-1"))
    return None if at < 0 else decoded[at : at + MAX_TOKEN]


def _dotnet_b64(value: InputValue, match: re.Match[str]) -> Judgement | None:
    token = _b64_token(value, match)
    for data in b64_alignments(token):
        at = data.find(_BINARY_FORMATTER)
        if at >= 0 and (at <= 8 or data.startswith(b"\xff\x01\x32")):
            return Judgement(".NET BinaryFormatter stream", token[:40], 90)
    return None


def _ruby_b64(value: InputValue, match: re.Match[str]) -> Judgement | None:
    data = b64_decode(_b64_token(value, match))
    gadget = _RUBY_GADGETS.search(data) if data.startswith(b"\x04\x08") else None
    if gadget is None:
        return None
    return Judgement("Ruby Marshal object", gadget.group().decode("latin-1"), 90)


def _gzip_b64(value: InputValue, match: re.Match[str]) -> Judgement | None:
    data = b64_decode(_b64_token(value, match)[:1024])
    try:
        head = zlib.decompressobj(wbits=31).decompress(data, _GZIP_PEEK)
    except zlib.error:
        return None
    if head.startswith(_JAVA_MAGIC):
        return java_stream(head)
    if head[:1] == b"\x80":
        return judge_pickle(zlib.decompressobj(wbits=31).decompress(data, MAX_TOKEN))
    return None


def _php(value: InputValue, match: re.Match[str]) -> Judgement | None:
    _, plus, length, name = match.groups()
    if plus or int(length) == len(name.encode("utf-8")):
        return Judgement("PHP serialized object", match.group()[:-1], 90)
    return None


def _node_b64(value: InputValue, match: re.Match[str]) -> Judgement | None:
    for data in b64_alignments(_b64_token(value, match)):
        if _NODE_FUNCTION.decode() in canonical(data.decode("latin-1")):
            return Judgement("base64-encoded node-serialize function", _NODE_FUNCTION.decode(), 95)
    return None


Decoder = Callable[[InputValue, re.Match[str]], Judgement | None]
# What each gate selects: where to look again in the value (Python's re), how to read it.
_DECODERS: dict[str, tuple[re.Pattern[str], Decoder]] = {
    **{
        f"{CHECK}.{name}": (re.compile(pattern), decoder)
        for (name, pattern, _), decoder in zip(
            _B64_GATES,
            (_java_b64, _pickle_b64, _dotnet_b64, _ruby_b64, _gzip_b64, _node_b64),
            strict=True,
        )
    },
    f"{CHECK}.pickle_raw": (re.compile(r"\x80[\x02-\x05]"), _pickle_raw),
    f"{CHECK}.pickle_text": (re.compile(_PICKLE_TEXT, re.IGNORECASE), _pickle_raw),
    f"{CHECK}.php_object": (_PHP_OBJECT, _php),
}


class Deserialization(ValueCheck):
    """Serialized objects (pickle, Java, PHP, .NET, YAML, Ruby, node) in request values."""

    id = CHECK
    category = "injection"
    title = "Insecure deserialization"
    description = "Serialized objects whose decoding runs sender-chosen code, in any value"
    inspects_plain = True  # base64 tokens are "plain" text

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        hit, _ = best_of(hits)
        best = Judgement(hit.signature.label, hit.evidence, hit.signature.score) if hit else None
        for gate in hits:
            locate, decode = _DECODERS.get(gate.signature.name, (None, None))
            if locate is None or decode is None:
                continue
            for match in itertools.islice(locate.finditer(value.text), _MAX_CANDIDATES):
                found = decode(value, match)
                if found is not None and (best is None or found.score > best.score):
                    best = found
        if best is None or (best.score < 75 and not self.strict):
            return None
        return self.found(value, best.kind, best.evidence, best.score)


register(Deserialization)
