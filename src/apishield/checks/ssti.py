"""Server-side template injection: template expressions that probe or escape the engine.

Expressions between template delimiters (``{{ }}``, ``{% %}``, ``${ }``, ``#{ }``,
``*{ }``, ``<% %>``) are tokenised and judged by what they do, not by their
delimiters: a placeholder such as ``{{name}}`` is what a template API receives every
day, while ``{{7*7}}`` (an arithmetic probe), ``{% if True %}`` (a constant
condition), a walk through Python's object graph (``''.__class__.__mro__``, also
when the dunder is spelled as joined strings or fetched with ``|attr``), or a call
that reaches the runtime (``getClass()``, ``require('child_process')``, ``system``,
``import os``) is not. Engine-specific gadgets with a fixed spelling (Freemarker's
``Execute``, Velocity's ``$class``, Thymeleaf preprocessing, Smarty ``{php}``) are
signatures.

Outside delimiters, a chain of Python sandbox-escape dunders is code injection for an
evaluating sink; it blocks in the request head and only at ``strict`` in bodies,
where chat and code-sharing APIs carry Python source honestly.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Final, NamedTuple

from apishield.checks import ValueCheck, register
from apishield.findings import Finding, Source
from apishield.inputs import InputValue
from apishield.signatures import Hit, best_of, register_check_signatures

PROBE_SCORE: Final = 85
ESCAPE_SCORE: Final = 90
_MAX_EXPRESSION: Final = 400
_BODY_SOURCES: Final = frozenset(
    {
        Source.BODY,
        Source.JSON,
        Source.JSON_KEY,
        Source.FORM,
        Source.FORM_KEY,
        Source.MULTIPART,
        Source.MULTIPART_NAME,
        Source.XML,
    }
)
# Delimited expressions; an unclosed ``{{`` runs to the end of the value. Control
# characters end the search: no template engine parses them (binary data has many).
_INNER: Final = rf"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]{{0,{_MAX_EXPRESSION}}}?"
_OPENERS: Final = ("{{", "{%", "<%", "${", "#{", "*{", "@{")
_MAX_OPENERS: Final = 2000
_EXPRESSION: Final = re.compile(
    rf"\{{\{{(?P<double>{_INNER})(?:\}}\}}|\Z)"
    rf"|\{{%(?P<statement>{_INNER})%\}}"
    rf"|<%(?P<scriptlet>{_INNER})%>"
    rf"|[$#*@]\{{(?P<braced>{_INNER})\}}"
)
_TOKEN: Final = re.compile(
    r"""(?P<string>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<name>[A-Za-z_]\w*)"""
    r"""|(?P<number>\d+)|(?P<op>\S)""",
    re.DOTALL,
)
_OPERAND: Final = r"""(?:\d{1,12}|'\d{1,12}'|"\d{1,12}")"""
_ARITHMETIC: Final = re.compile(rf"[\s=\-#!{{]*{_OPERAND}(?:\s*\*\s*{_OPERAND})+[\s\-}}]*")
_ARITHMETIC_ANY: Final = re.compile(rf"[\s=\-#!{{]*{_OPERAND}(?:\s*[-+*/%]\s*{_OPERAND})+[\s\-}}]*")
_CONSTANT_CONDITION: Final = re.compile(
    r"[\s=\-]*(?:if|elif|elsif|unless|while)\s*\(?\s*"
    r"(?:true|false|\d+(?:\s*(?:==|!=|<=|>=|<|>)\s*\d+)?)\s*\)?[\s\-]*",
    re.IGNORECASE,
)
_ESCAPE: Final = re.compile(r"\\x([0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})")
_DUNDER: Final = re.compile(r"__([a-z]+(?:_[a-z]+)?)__")
# Python attributes that lead from any object to classes, modules and builtins.
_ESCAPE_DUNDERS: Final = frozenset(
    {
        "class",
        "mro",
        "subclasses",
        "globals",
        "builtins",
        "base",
        "bases",
        "import",
        "init",
        "dict",
        "getattribute",
        "getitem",
        "code",
        "func",
        "closure",
        "self",
        "module",
        "loader",
        "spec",
        "reduce",
        "reduce_ex",
        "subclasshook",
    }
)
# The dunders only a sandbox escape needs (outside delimiters, where code is written).
_CHAIN_DUNDERS: Final = frozenset(
    {"mro", "subclasses", "globals", "builtins", "bases", "base", "import"}
)
# Jinja2/Flask globals and what reading them leaks without any dunder.
_LEAKS: Final = {
    ("request", "application"),
    ("request", "environ"),
    ("self", "_TemplateReference__context"),
    ("config", "items"),
    ("settings", "SECRET_KEY"),
    ("_self", "env"),
}
# Calls and names that reach the runtime from Java EL/SpEL, Ruby, Node and Python.
_RUNTIME_NAMES: Final = frozenset(
    {
        "getClass",
        "forName",
        "getRuntime",
        "ProcessBuilder",
        "getMethod",
        "getDeclaredMethod",
        "newInstance",
        "getClassLoader",
        "loadClass",
        "defineClass",
        "mainModule",
        "child_process",
        "execSync",
        "spawnSync",
        "popen",
        "subprocess",
        "check_output",
        "passthru",
        "shell_exec",
        "proc_open",
        "registerUndefinedFilterCallback",
    }
)
# Called as functions (``system(...)``, ``os.system``, ``IO.popen``, ``Kernel.exec``).
_RUNTIME_CALLS: Final = frozenset({"system", "exec", "spawn", "eval", "instance_eval", "require"})
# Objects whose methods of those names run code (``os.system``, ``Kernel.exec``).
_RUNTIME_OBJECTS: Final = frozenset(
    {"os", "Kernel", "IO", "Open3", "Runtime", "process", "cp", "shell"}
)
_STATEMENT_IMPORT: Final = re.compile(r"[\s=!\-]*(?:import\s+\w|from\s+[\w.]+\s+import\s)")
_RUBY_SHELL: Final = re.compile(r"`[\x20-\x5f\x61-\x7e]{1,100}`|%x[({\[]")  # printable, no `
_STRING_FILTER: Final = re.compile(
    r"\|\s*(?:filter|map|reduce|sort)\s*\(\s*['\"]"
    r"(?:system|exec|passthru|shell_exec|popen|proc_open)['\"]"
)

register_check_signatures(
    "ssti",
    (
        (
            "freemarker_execute",
            r"freemarker\.template\.utility\.(?:Execute|ObjectConstructor|JythonRuntime)\b",
            "Freemarker execute gadget",
            95,
        ),
        ("freemarker_new", r"[\"']\s*\?\s*new\s*\(", "Freemarker ?new() instantiation", 90),
        ("freemarker_api", r"\w\s*\?\s*api\s*\.\s*\w+\s*\(", "Freemarker ?api call", 85),
        (
            "velocity_reflection",
            r"#set\s*\(\s*\$[\w.]+\s*=[^\x00]*?\.\s*(?:getClass|forName|getRuntime"
            r"|getMethod|newInstance|exec)\s*\(",
            "Velocity reflection",
            90,
        ),
        ("velocity_classtool", r"\$class\s*\.\s*(?:inspect|type|forName)\b", "Velocity $class", 90),
        (
            "thymeleaf_preprocess",
            r"__\s*[$*#@~]\{[^\x00}]*\}\s*__\s*(?:::|\.)",
            "Thymeleaf preprocessing",
            95,
        ),
        ("smarty_php", r"\{/?php\}", "Smarty {php} tag", 85),
        (
            "smarty_call",
            r"\{\s*(?:if\s+)?(?:system|passthru|shell_exec|popen|proc_open)\s*\(\s*['\"$]"
            r"|\{\s*(?:Smarty_[\w]+|self)\s*::\s*\w+\s*\(|\{\s*\$smarty\s*\.\s*"
            r"(?:version|template_object|server|env|get|cookies)\b",
            "Smarty code",
            85,
        ),
        (
            "handlebars_gadget",
            r"\{\{\s*#\s*with\s+[\"'][^\"'\x00]*[\"']\s+as\s+\|",
            "Handlebars string gadget",
            90,
        ),
        ("razor_probe", r"@\(\s*\d{1,12}\s*\*\s*\d{1,12}\s*\)", "arithmetic probe", 85),
        # Gates: delimited expressions and Python dunder chains, judged by inspect.
        ("expression", r"\{\{|\{%|[$#*@]\{|<%", "template expression", 0),
        (
            "dunder",
            r"(?-i:__(?:class|mro|subclasses|globals|builtins|bases?|import|init)__)",
            "Python dunder",
            0,
        ),
    ),
)


class Token(NamedTuple):
    """One token of a template expression: its kind (string, name, number, op) and text."""

    kind: str
    text: str


_EDGE: Final = Token("op", "")


class TemplateInjection(ValueCheck):
    """SSTI: template expressions that probe the engine or walk to the runtime."""

    id = "ssti"
    category = "injection"
    title = "Template injection"
    description = "Server-side template expressions (Jinja2, Twig, Freemarker, ...) in any value"

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        hit, _ = best_of(hits)
        if hit is not None:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        gates = {h.signature.name: h.end for h in hits}  # gates report where they end
        end = gates.get("ssti.expression")
        if end is not None:
            for match in expressions(value.text, max(0, end - 2)):
                kind, score = self._judge(match)
                if kind:
                    return self.found(value, kind, match.group(0)[:160], score)
        return self._dunder_chain(value) if "ssti.dunder" in gates else None

    def _judge(self, match: re.Match[str]) -> tuple[str, int]:
        """What the delimited expression in ``match`` does, and the score; ("", 0) if benign."""
        group = match.lastgroup or "braced"
        inner = match.group(group)
        if _ARITHMETIC.fullmatch(inner) or (self.strict and _ARITHMETIC_ANY.fullmatch(inner)):
            return "arithmetic probe", PROBE_SCORE
        if group in ("statement", "scriptlet"):
            if _CONSTANT_CONDITION.fullmatch(inner):
                return "constant condition probe", PROBE_SCORE
            if _STATEMENT_IMPORT.match(inner):
                return "module import", ESCAPE_SCORE
        if (group == "scriptlet" or match.group(0)[0] == "#") and _RUBY_SHELL.search(inner):
            return "shell command", ESCAPE_SCORE
        kind = expression_kind(inner)
        return (kind, ESCAPE_SCORE) if kind else ("", 0)

    def _dunder_chain(self, value: InputValue) -> Finding | None:
        """Sandbox-escape dunders chained outside delimiters (code for an evaluating sink)."""
        if value.location.source in _BODY_SOURCES and not self.strict:
            return None
        tokens = tokenize(value.text)
        reached = [d for d in accessed_dunders(tokens) if d in _ESCAPE_DUNDERS]
        if len(reached) < 2 or not _CHAIN_DUNDERS.intersection(reached):
            return None
        first = value.text.find(f"__{reached[0]}__")
        return self.found(value, "Python object walk", value.text[max(0, first - 40) :][:160], 85)


def expressions(text: str, start: int = 0) -> Iterator[re.Match[str]]:
    """Each delimited expression in ``text`` from ``start``, in order of its opener.

    Openers are found with ``str.find`` (fast on 100 KB bodies, where a regex scan is
    not) and each is matched in place, so overlapping forms (``${{7*7}}``) are all seen.
    """
    found: list[int] = []
    for opener in _OPENERS:
        position = text.find(opener, start)
        while position >= 0 and len(found) < _MAX_OPENERS:
            found.append(position)
            position = text.find(opener, position + 1)
    for position in sorted(found):
        match = _EXPRESSION.match(text, position)
        if match is not None:
            yield match


def tokenize(expression: str) -> list[Token]:
    """The tokens of ``expression`` (strings keep their quotes; whitespace is dropped)."""
    tokens: list[Token] = []
    for match in _TOKEN.finditer(expression):
        kind = match.lastgroup
        if kind is not None:
            tokens.append(Token(kind, match.group(kind)))
    return tokens


def expression_kind(expression: str) -> str:
    """What makes ``expression`` an injection ("" when nothing does)."""
    if _STRING_FILTER.search(expression):
        return "callback filter"
    tokens = tokenize(expression)
    if any(d in _ESCAPE_DUNDERS for d in accessed_dunders(tokens)):
        return "Python object walk"
    for index in range(len(tokens)):
        kind = _token_kind(tokens, index)
        if kind:
            return kind
    return ""


def _token_kind(tokens: Sequence[Token], index: int) -> str:
    """What the token at ``index`` reveals in its context ("" for nothing)."""
    token = tokens[index]
    if token.kind == "string":
        return "runtime gadget" if "child_process" in token.text else ""
    if token.kind != "name":
        return ""
    name = token.text
    before = _at(tokens, index - 1).text, _at(tokens, index - 2).text
    after = _at(tokens, index + 1), _at(tokens, index + 2)
    if name in _RUNTIME_NAMES:
        return "runtime access"
    called = after[0].text == "(" or after[0].kind == "string"
    if name in _RUNTIME_CALLS and called and (before[0] != "." or before[1] in _RUNTIME_OBJECTS):
        return "code execution call"
    if name == "constructor" and before[0] == "." and after[0].text in (".", "("):
        return "constructor gadget"
    if after[0].text == "." and (name, after[1].text) in _LEAKS:
        return "template global leak"
    if name == "request" and after[0].text == "." and (before[0] == "[" or before[1] == "attr"):
        return "attribute name from request data"
    return ""


def _at(tokens: Sequence[Token], index: int) -> Token:
    """The token at ``index``, or an empty op outside the expression."""
    return tokens[index] if 0 <= index < len(tokens) else _EDGE


def accessed_dunders(tokens: Sequence[Token]) -> list[str]:
    """Dunder names reached as attributes, subscripts, ``attr()`` strings or joined strings."""
    found: list[str] = []
    for token in tokens:
        if token.kind == "name":
            found += _DUNDER.findall(token.text)
        elif token.kind == "string":
            found += _DUNDER.findall(_unescape(token.text[1:-1]))
    joined = _joined_strings(tokens)
    if joined:
        found += [d for d in _DUNDER.findall(joined) if d not in found]
    return found


def _unescape(literal: str) -> str:
    """A string literal's ``\\xHH`` and ``\\uHHHH`` escapes decoded, as the engine would."""
    if "\\" not in literal:
        return literal
    return _ESCAPE.sub(lambda m: chr(int(m.group(1) or m.group(2), 16)), literal)


def _joined_strings(tokens: Sequence[Token]) -> str:
    """String literals concatenated in order (``'_'*2 ~ 'class'`` → ``__class``)."""
    parts: list[str] = []
    for index, token in enumerate(tokens):
        if token.kind != "string":
            continue
        text = _unescape(token.text[1:-1])
        after = tokens[index + 1 : index + 3]
        if len(after) == 2 and after[0].text == "*" and after[1].kind == "number":
            text *= min(int(after[1].text), 8)
        parts.append(text)
    return "".join(parts) if len(parts) > 1 else ""


register(TemplateInjection)
