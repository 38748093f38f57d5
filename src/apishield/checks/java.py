"""Java injection: dangerous Java classes, OGNL/EL/SpEL expressions, gadget names, JSP.

Gate signatures select values naming Java classes, Java calls, expression syntax or
base64 that spells a Java keyword; :func:`analyse` then reads the value as Java
source would be read. Qualified names (``java . lang . Runtime`` too: Java allows
spaces around dots) are looked up by group in :data:`_CLASSES`:

* execution, scripting, class loading, JNDI, file writing and serialization
  gadget classes are block-worthy by name alone: no honest client sends them;
* reflection, ``java.lang.System``, streams and bare package names are what stack
  traces and documentation mention, so on their own they count only at
  ``strict``, and at ``balanced`` when *used*: called, instantiated, referenced
  from an expression (``T(...)``, ``@...@``, ``${...}``) or named as the type of
  a polymorphic JSON/XML/YAML object (``"@type"``, ``class=``, ``!!``);
* value types (``java.lang.String``, ``java.util.ArrayList``) are never evidence.

Stack-trace frames (``at java.lang.reflect.Method.invoke(Method.java:498)``) and
exception names are left out: they are what crash reports honestly carry.
Base64 tokens that a gate finds to encode a Java keyword (at any of the 3 byte
alignments, as CRS 944300 does) are decoded at the 4 possible alignments and the
decoded text gets the same analysis.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from typing import Final

import hyperscan

from apishield.checks import ValueCheck, register
from apishield.checks.deserialization import Judgement, b64_alignments, b64_fragments, token_at
from apishield.findings import Finding, Source
from apishield.inputs import InputValue
from apishield.signatures import (
    END,
    Hit,
    Signature,
    best_of,
    register_check_signatures,
    register_signatures,
)

CHECK: Final = "java"
BALANCED: Final = 75  # judgements below this score are reported at strict sensitivity only
_USED: Final = 90  # score of a dangerous class that is used (called, instantiated, typed)

# Lower-case qualified names (or package prefixes ending in ".") -> (kind, score alone).
_CLASSES: dict[str, tuple[str, int]] = {
    **dict.fromkeys(
        (
            "java.lang.runtime",
            "java.lang.processbuilder",
            "java.lang.processimpl",
            "java.lang.unixprocess",
            "java.lang.process",
        ),
        ("command execution class", 90),
    ),
    **dict.fromkeys(
        (
            "javax.script.scriptenginemanager",
            "javax.script.",
            "groovy.lang.groovyshell",
            "groovy.util.eval",
            "org.codehaus.groovy.runtime.",
            "jdk.jshell.",
            "bsh.interpreter",
            "jdk.nashorn.",
            "org.mozilla.javascript.",
        ),
        ("script engine class", 85),
    ),
    **dict.fromkeys(
        (
            "java.lang.classloader",
            "java.net.urlclassloader",
            "com.sun.org.apache.bcel.",
            "com.sun.org.apache.xalan.internal.xsltc.trax.templatesimpl",
            "org.apache.xalan.xsltc.trax.templatesimpl",
            "javax.management.loading.",
            "groovy.lang.groovyclassloader",
            "org.springframework.context.support.classpathxmlapplicationcontext",
            "org.springframework.context.support.filesystemxmlapplicationcontext",
        ),
        ("class loading class", 90),
    ),
    **dict.fromkeys(
        (
            "javax.naming.initialcontext",
            "javax.naming.",
            "com.sun.jndi.",
            "com.sun.rowset.jdbcrowsetimpl",
            "org.apache.naming.factory.",
            "org.springframework.jndi.",
            "org.apache.ibatis.datasource.jndi.",
            "ch.qos.logback.core.db.",
            "org.apache.commons.dbcp.basicdatasource",
            "org.apache.tomcat.dbcp.dbcp2.basicdatasource",
        ),
        ("JNDI class", 85),
    ),
    **dict.fromkeys(
        (
            "java.io.fileoutputstream",
            "java.io.filewriter",
            "java.io.randomaccessfile",
            "java.nio.file.files",
            "java.nio.channels.filechannel",
        ),
        ("file writing class", 85),
    ),
    **dict.fromkeys(
        (
            "org.apache.commons.collections.functors.",
            "org.apache.commons.collections4.functors.",
            "org.apache.commons.collections.keyvalue.tiedmapentry",
            "org.apache.commons.collections.map.lazymap",
            "org.apache.commons.beanutils.beancomparator",
            "sun.reflect.annotation.annotationinvocationhandler",
            "javax.management.badattributevalueexpexception",
            "java.beans.eventhandler",
            "java.beans.xmldecoder",
            "com.mchange.v2.c3p0.",
            "org.springframework.beans.factory.config.propertypathfactorybean",
            "sun.rmi.",
            "java.rmi.",
        ),
        ("deserialization gadget class", 85),
    ),
    **dict.fromkeys(
        (
            "java.lang.reflect.",
            "java.lang.invoke.",
            "java.lang.class",
            "java.lang.system",
            "java.lang.thread",
            "sun.misc.unsafe",
            "jdk.internal.",
            "ognl.",
        ),
        ("reflection class", 60),
    ),
    **dict.fromkeys(
        ("java.io.", "java.net.socket", "java.net.url"),
        ("I/O class", 60),
    ),
    **dict.fromkeys(
        (
            "java.lang.reflect",
            "com.sun.org.apache",
            "org.apache.commons",
            "org.omg.corba",
            "com.opensymphony.xwork2",
        ),
        ("Java internals package", 60),
    ),
}
# Class names recognised without their package (lower case) -> (kind, score alone).
_SIMPLE: dict[str, tuple[str, int]] = {
    **dict.fromkeys(
        (
            "invokertransformer",
            "instantiatetransformer",
            "chainedtransformer",
            "constanttransformer",
            "clonetransformer",
            "instantiatefactory",
            "prototypeclonefactory",
            "prototypeserializationfactory",
            "whileclosure",
            "templatesimpl",
            "jdbcrowsetimpl",
            "annotationinvocationhandler",
            "badattributevalueexpexception",
        ),
        ("deserialization gadget class", 85),
    ),
    **dict.fromkeys(
        ("classpathxmlapplicationcontext", "filesystemxmlapplicationcontext"),
        ("class loading class", 85),
    ),
    # "forclosure" is also a common misspelling of "foreclosure"
    "forclosure": ("deserialization gadget class", 60),
    "processbuilder": ("command execution class", 60),
    "scriptenginemanager": ("script engine class", 60),
    "urlclassloader": ("class loading class", 60),
}
_EXECUTION_WORDS: Final = frozenset({"runtime", "processbuilder"})
# Methods of an execution object that run or reach a command: ``runtime.exec(``.
_EXECUTION_METHODS: Final = frozenset({"exec", "getruntime", "loadlibrary"})
_OPENERS: Final = ("${", "#{", "%{", "*{")
_OPENER_WINDOW: Final = 64  # how far back an expression's opener is looked for
_HARMLESS_TYPES: Final = re.compile(
    r"java\.(?:util|time|math|text)\.|java\.lang\.(?:string|integer|long|short|byte|double|float"
    r"|boolean|character|number|object|enum|iterable|comparable|charsequence)\b"
)
_TYPING_KEYS: Final = ("@type", "@class", "/@c")
_JDK: Final = ("java.", "javax.", "jdk.", "sun.", "com.sun.")
_USE_BEFORE: Final = re.compile(r"(?:\bnew|@|\bT\s*\(|!!|\bclass\s*=\s*['\"]?)\s*$")
_SPACES: Final = re.compile(r"\s+")
_WORD: Final = re.compile(r"[A-Za-z_$][\w$]*")
_NAME: Final = re.compile(
    r"(?<![\w$])[A-Za-z_$][\w$]*(?:\s*\.\s*[A-Za-z_$][\w$]*)+"
)  # word starts only
_FRAME: Final = re.compile(
    r"\bat\s+[\w$.<>/]+\((?:[\w$]+\.(?:java|groovy|kt|scala):\d+|Native Method|Unknown Source)\)"
)
_EXPRESSION: Final = re.compile(
    r"[$#%*@~]\{|\bT\s*\(\s*[\w$]+\s*\.|@[\w$.]+@|<%|^[ \t]*!!", re.MULTILINE
)
_TYPED_JSON: Final = re.compile(r"\"@(?:type|class|c)\"\s*:\s*\"([\w$.]+)\"")
_UPLOAD: Final = re.compile(r"\.\s*jsp[xf]?[\s.]*$", re.IGNORECASE)
_MAX_SEGMENTS: Final = (
    16  # a dotted name is judged by its first 16 segments (lookups are by prefix)
)

# Java calls that only exploit code makes in a request value.
_CALL: Final = r"\s*\(\s*"
register_check_signatures(
    CHECK,
    (
        ("runtime_exec", rf"\bgetRuntime{_CALL}\)\s*\.\s*exec{_CALL}", "Runtime.exec call", 95),
        (
            "ognl",
            r"#_memberAccess\b|@ognl\.OgnlContext@|\bDEFAULT_MEMBER_ACCESS\b"
            r"|#context\s*(?:\[|\.\s*get)",
            "OGNL context access",
            95,
        ),
        (
            "classloader_chain",
            r"\bclass\s*\.\s*module\s*\.\s*classLoader\b|\bclass\s*\.\s*classLoader\s*\."
            r"|\bclass\s*\[\s*['\"]classLoader['\"]\s*\]",
            "class loader manipulation",
            95,
        ),
        (
            "reflective_call",
            rf"(?:\bClass\s*\.\s*forName|\.\s*getClass{_CALL}\)\s*\.\s*(?:forName|getClassLoader"
            rf"|getMethod|getDeclared\w+|getResource\w*|getProtectionDomain)|\.\s*class\s*\.\s*"
            rf"(?:forName|getClassLoader|getMethod|getDeclared\w+)|\bdefineClass|\.\s*getEngineByName"
            rf"|\bgetDeclared(?:Method|Field|Constructor)s?){_CALL}",
            "Java reflection call",
            90,
        ),
        (
            "instantiation",
            r"\bnew\s+(?:[\w$]+\s*\.\s*)*(?:ProcessBuilder|ScriptEngineManager|URLClassLoader"
            r"|InitialContext)\s*\(",
            "dangerous Java object creation",
            90,
        ),
        (
            "el_implicit",
            r"[$#]\{[^}\x00]*?\b(?:pageContext|facesContext|applicationScope|sessionScope"
            r"|requestScope)\b",
            "Java EL implicit object",
            85,
        ),
        (
            "jsp",
            r"<%@\s*page\b[^%\x00]*\bimport\s*=|<jsp:(?:scriptlet|declaration|expression)\b"
            r"|<%!?=?[^%\x00]*\b(?:Runtime|ProcessBuilder|request\s*\.\s*getParameter)\b",
            "JSP code",
            90,
        ),
        (
            "qualified",
            r"\b(?:java|javax|jdk|sun|bsh|groovy|ognl|com\s*\.\s*(?:sun|opensymphony|mchange)"
            r"|org\s*\.\s*(?:apache|springframework|codehaus|mozilla|omg)|ch\s*\.\s*qos)"
            r"\s*\.\s*[\w$]",
            "Java class name",
            0,
        ),
        (
            "simple",
            r"\b(?:(?:invoker|instantiate|chained|constant|clone)transformer|instantiatefactory|prototype\w*factory|(?:while|for)closure"
            r"|templatesimpl|jdbcrowsetimpl|annotationinvocationhandler|badattributevalue\w*"
            r"|\w*xmlapplicationcontext|processbuilder|scriptenginemanager|urlclassloader)\b"
            r"|\bruntime\s*[.(@]|[.@]\s*runtime\b",
            "Java class name",
            0,
        ),
        (
            "expression",
            r"\bT\s*\(\s*[\w$]+\s*\.|@[\w$]+(?:\.[\w$]+)+@\w",
            "Java expression",
            0,
        ),
        ("typed_json", r"\"@(?:type|class|c)\"\s*:\s*\"[\w$]+\.", "polymorphic JSON type", 0),
        ("upload", rf"\.\s*jsp[xf]?[\s.]*{END}", "JSP file name", 0),
    ),
)


_B64_KEYWORDS: Final = (
    "getRuntime",
    "java.lang.",
    "ProcessBuilder",
    "processbuilder",
    "ScriptEngineManager",
    "scriptenginemanager",
    "forName",
    "URLClassLoader",
    "urlclassloader",
    "InitialContext",
    "TemplatesImpl",
    "templatesimpl",
    "JdbcRowSetImpl",
    "jdbcrowsetimpl",
    *(
        spelling
        for word in (
            "InvokerTransformer",
            "InstantiateTransformer",
            "ChainedTransformer",
            "ConstantTransformer",
            "CloneTransformer",
            "InstantiateFactory",
            "PrototypeCloneFactory",
            "PrototypeSerializationFactory",
            "WhileClosure",
            "ForClosure",
        )
        for spelling in (word, word.lower())
    ),
)
_B64_PATTERN: Final = "|".join(
    sorted({re.escape(f) for k in _B64_KEYWORDS for f in b64_fragments(k.encode())})
)
_B64_FRAGMENT: Final = re.compile(_B64_PATTERN)
_MAX_TOKENS: Final = 4  # base64 tokens decoded per value
register_signatures(
    [
        Signature(
            f"{CHECK}.base64",
            CHECK,
            _B64_PATTERN,
            "base64-encoded Java keyword",
            0,
            flags=hyperscan.HS_FLAG_SOM_LEFTMOST | hyperscan.HS_FLAG_DOTALL,
        )
    ]
)


def analyse(text: str, *, typed: bool = False) -> Judgement | None:
    """The strongest Java evidence in ``text``; ``typed``: it names a polymorphic type.

    Names are judged alone (:data:`_CLASSES`, :data:`_SIMPLE`), raised to
    :data:`_USED` when the value uses them, and two distinct execution or gadget
    words together (``runtime.forclosure``) count as a gadget reference.
    """
    text = _FRAME.sub(" ", text)
    expression = typed or _EXPRESSION.search(text) is not None
    best: Judgement | None = None
    words: set[str] = set()
    for match in _NAME.finditer(text):
        name = _SPACES.sub("", match.group()).lower()
        judged = _judge_name(name, words)
        if judged is None and typed and name.startswith(_JDK) and not _HARMLESS_TYPES.match(name):
            judged = ("polymorphic type naming a JDK class", 85)
        if (
            judged is None
            and (best is None or best.score < _USED)
            and _calls_execution(name)
            and _in_expression(text, match)
        ):
            judged = ("command execution call in an expression", _USED)
        if judged is None:
            continue
        kind, score = judged
        if expression or _is_used(text, match.start(), match.end()):
            score = max(score, _USED)
        if best is None or score > best.score:
            best = Judgement(kind, match.group(), score)
    for match in _WORD.finditer(text):
        simple = _SIMPLE.get(match.group().lower())
        if simple is not None and (best is None or simple[1] > best.score):
            best = Judgement(simple[0], match.group(), simple[1])
    return best


def _judge_name(name: str, words: set[str]) -> tuple[str, int] | None:
    """The group and score of one lower-case dotted name; collects its danger words."""
    segments = name.split(".", _MAX_SEGMENTS)[:_MAX_SEGMENTS]  # known names are far shorter
    words.update(s for s in segments if s in _EXECUTION_WORDS or s in _SIMPLE)
    if _HARMLESS_TYPES.match(name):
        return None
    found = _lookup(segments)
    for segment in segments:
        simple = _SIMPLE.get(segment)
        if simple is not None and (found is None or simple[1] > found[1]):
            found = simple
    if segments[0] == "java" and _names_execution(segments) and (found is None or found[1] < 85):
        found = ("command execution class", 85)
    if len(words) >= 2 and (found is None or found[1] < 85):
        found = ("deserialization gadget class", 85)
    return found


def _lookup(segments: list[str]) -> tuple[str, int] | None:
    """The longest entry of :data:`_CLASSES` that ``segments`` spell out or start with.

    Exception names match only exactly: packages are named in every stack trace.
    """
    if segments[-1].endswith(("exception", "error")):
        return _CLASSES.get(".".join(segments))
    for end in range(len(segments), 1, -1):
        prefix = ".".join(segments[:end])
        found = _CLASSES.get(prefix)
        if found is not None:
            return found
        found = _CLASSES.get(prefix + ".") if end < len(segments) else None
        if found is not None:
            return found
    return None


def _names_execution(segments: list[str]) -> bool:
    """``java.<...>.Runtime`` / ``ProcessBuilder``, last or followed by a call on it."""
    for index, segment in enumerate(segments[1:], 1):
        if segment in _EXECUTION_WORDS:
            after = segments[index + 1 : index + 2]
            return not after or after[0].startswith(("get", "exec", "start", "class", "new"))
    return False


def _calls_execution(name: str) -> bool:
    """``runtime.exec``, ``x.runtime.getruntime``: an execution method of an execution
    object, whatever the variable holding it is called in an expression's context."""
    segments = name.split(".", _MAX_SEGMENTS)[:_MAX_SEGMENTS]
    return any(
        word in _EXECUTION_WORDS and method in _EXECUTION_METHODS
        for word, method in itertools.pairwise(segments)
    )


def _in_expression(text: str, name: re.Match[str]) -> bool:
    """True when the called ``name`` sits inside an expression's braces (``#{runtime.exec(``);
    prose that mentions ``Runtime.exec()`` has no opener right before it."""
    if text[name.end() : name.end() + 1] != "(":
        return False
    window = text[max(0, name.start() - _OPENER_WINDOW) : name.start()]
    opener = max(window.rfind(o) for o in _OPENERS)
    return opener >= 0 and "}" not in window[opener:]


def _is_used(text: str, start: int, end: int) -> bool:
    """True when the name at ``text[start:end]`` is called, instantiated or referenced."""
    before = _USE_BEFORE.search(text, max(0, start - 16), start)
    return text[end : end + 1] in ("(", "@") or before is not None


def _decoded(text: str) -> Judgement | None:
    """:func:`analyse` of the base64 tokens that hold a Java keyword, at each alignment."""
    best: Judgement | None = None
    for match in itertools.islice(_B64_FRAGMENT.finditer(text), _MAX_TOKENS):
        for data in b64_alignments(token_at(text, match.start())):
            found = analyse(data.decode("latin-1"))
            if found is not None and (best is None or found.score > best.score):
                best = Judgement(f"base64-encoded {found.kind}", found.evidence, found.score)
    return best


def _typed(value: InputValue) -> bool:
    """True when ``value`` is the type name of a polymorphic JSON or XML object."""
    name = value.location.name
    return value.location.source in (Source.JSON, Source.XML) and name.endswith(_TYPING_KEYS)


def _upload(value: InputValue) -> Judgement | None:
    """A JSP file name where a file name is given (upload headers, multipart)."""
    source, name = value.location.source, value.location.name.lower()
    is_file_name = source is Source.MULTIPART_NAME or (
        source is Source.HEADER and "file" in name and "name" in name
    )
    match = _UPLOAD.search(value.text) if is_file_name else None
    return Judgement("JSP file upload", value.text[-40:], 85) if match else None


class JavaInjection(ValueCheck):
    """Java, OGNL, EL and SpEL injection and Java gadget class names in request values."""

    id = CHECK
    category = "injection"
    title = "Java injection"
    description = "Java classes, expression language and gadget names in any request value"
    inspects_plain = True  # "java.lang.Runtime" and base64 tokens are "plain" text

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        hit, _ = best_of(hits)
        if hit is not None and hit.signature.score >= _USED:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        names = {h.signature.name for h in hits}
        candidates = [_upload(value) if f"{CHECK}.upload" in names else None]
        if hit is not None:
            candidates.append(Judgement(hit.signature.label, hit.evidence, hit.signature.score))
        if names - {f"{CHECK}.upload", f"{CHECK}.base64"}:
            typed_json = _TYPED_JSON.search(value.text)
            candidates.append(analyse(value.text, typed=_typed(value)))
            if typed_json is not None:
                candidates.append(analyse(typed_json.group(1), typed=True))
        if f"{CHECK}.base64" in names:
            candidates.append(_decoded(value.text))
        best = max((c for c in candidates if c is not None), key=lambda c: c.score, default=None)
        if best is None or (best.score < BALANCED and not self.strict):
            return None
        return self.found(value, best.kind, best.evidence, best.score)


register(JavaInjection)
