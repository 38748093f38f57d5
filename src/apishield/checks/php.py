"""PHP code injection: open tags, dangerous calls, variable functions, wrappers, uploads.

Signatures find the unmistakable forms (``<?php``, ``php://input``, ``$_GET[``,
``allow_url_include=``); gates send the rest to small PHP readings:

* a call of a known function (:func:`judge_call`): functions that run code, commands or
  decoders (``system``, ``base64_decode``) count when called with a PHP-like argument, or
  whenever their name is PHP-only (``shell_exec(``); a comment or line break between any
  known function and its ``(`` is obfuscation. A harmless helper (``substr()``) alone is
  evidence only at ``strict``.
* a variable function (``$f(1)``, ``@$__[o](4)``, ``${'a'}(1)``): obfuscated callees count,
  a plain ``$name(`` (also JavaScript's ``$t('key')``) only at ``strict``.
* a callee built from pieces (``(sy.(st).em)('id')``, ``"sys"."tem"(...)``,
  ``define('x','sys'.'tem');(x)(...)``): the pieces are joined and resolved.
* file names of uploads with PHP extensions (``shell.php.``, ``x.phar .png``) or the name
  of a PHP session file (``sess_<id>``), in upload locations only.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from typing import Final

from apishield.checks import ValueCheck, register, word_set
from apishield.findings import Finding, Source
from apishield.inputs import InputValue
from apishield.signatures import Hit, best_of, longest_first, register_check_signatures

# Functions that run code or commands: a PHP-like argument makes the call an attack.
_EXEC: Final = word_set(
    "system exec passthru shell_exec popen proc_open pcntl_exec eval assert create_function"
    " call_user_func call_user_func_array include include_once require require_once"
    " preg_replace array_map usort uasort uksort array_filter array_walk register_shutdown_function"
    " register_tick_function ob_start"
)
# Names only PHP uses, for code execution, decoding payloads, probing or writing files:
# ``name(`` is an attack whatever the argument.
_PHP_ONLY: Final = word_set(
    "shell_exec passthru proc_open pcntl_exec create_function call_user_func"
    " call_user_func_array base64_decode gzinflate gzuncompress gzdecode str_rot13 bzdecompress"
    " zlib_decode convert_uudecode phpinfo phpversion php_uname get_defined_vars"
    " get_defined_functions get_defined_constants fsockopen pfsockopen file_put_contents"
    " move_uploaded_file show_source highlight_file assert_options curl_exec proc_nice"
    " posix_getpwuid posix_getpwnam posix_getegid posix_geteuid posix_getgid posix_getuid"
    " posix_kill posix_mkfifo posix_setuid posix_setgid posix_uname ini_set dl apache_setenv"
    " getmypid getmyuid get_current_user"
)
# Other functions an injection calls; alone they are weak evidence (``strict``).
_PROBES: Final = word_set(
    "fopen fwrite fputs fread readfile file file_get_contents file_exists filegroup fileowner"
    " unlink rename copy mkdir rmdir touch symlink link chroot chmod chown chdir opendir scandir"
    " glob tempnam tmpfile getenv putenv ini_get ini_restore set_time_limit error_reporting"
    " extract parse_str unserialize serialize unpack pack printf sprintf print_r var_dump"
    " var_export strrev chr ord substr intval strip_tags crypt md5 sha1 hex2bin bin2hex"
    " gethostbyname curl_init mail header"
)
_FUNCTIONS: Final = _EXEC | _PHP_ONLY | _PROBES
_FUNCTION_WORDS: Final = "|".join(sorted(_FUNCTIONS, key=longest_first))
_EXEC_WORDS: Final = "|".join(sorted(_EXEC | {"phpinfo", "base64_decode"}, key=longest_first))
_SUPERGLOBAL: Final = r"\$_(?:GET|POST|REQUEST|COOKIE|SERVER|FILES|ENV|SESSION)"
_UPLOAD_EXTENSION: Final = re.compile(
    r"\.\s*(?:php\d*|phtml|pht|phps|phpt|phar)(?:[.\s]*$|\s*\.\w{1,5}[.\s]*$)", re.IGNORECASE
)
_SESSION_FILE: Final = re.compile(r"(?:^|[/\\])sess_[a-z0-9,-]{20,}\s*$", re.IGNORECASE)

register_check_signatures(
    "php",
    (
        # ``${@expr}`` and ``{${expr}}``: complex variable syntax evaluating an expression
        ("complex_syntax", r"\$\{\s*@|\{\s*\$\{", "PHP complex variable syntax", 85),
        (
            "open_tag",
            r"<\?(?:\s*php\b|=\s*(?:[$\"'(@]|\w+\s*[(;?])|\s*(?:echo|print|die|exit|include|require|eval|assert|system|exec"
            r"|passthru|shell_exec|phpinfo|file_put_contents|fwrite|\$[a-z_])\b)|<\?xml\s*[:(;]",
            "PHP open tag",
            90,
        ),
        ("smarty_tag", r"\{/?php\}", "Smarty PHP tag", 85),
        ("bbcode_tag", r"\[/?php\]", "PHP code tag", 60, "strict"),
        (
            "superglobal",
            rf"{_SUPERGLOBAL}\s*\[|\$GLOBALS\s*\[|\$HTTP_(?:RAW_POST_DATA|(?:GET|POST|COOKIE)_VARS)\b",
            "PHP request variable",
            80,
        ),
        ("superglobal_name", rf"{_SUPERGLOBAL}\b", "PHP request variable", 60, "strict"),
        (
            "io_stream",
            r"\bphp://(?:input|filter|stdin|stdout|stderr|output|fd|memory|temp)\b",
            "PHP I/O stream",
            85,
        ),
        (
            "wrapper",
            r"\b(?:expect|ssh2\.(?:shell|exec|tunnel|sftp|scp)|zlib|glob|phar|ogg|rar)://",
            "PHP stream wrapper",
            85,
        ),
        (
            "ini_directive",
            r"\b(?:allow_url_include|allow_url_fopen|auto_prepend_file|auto_append_file"
            r"|disable_functions|disable_classes|open_basedir|extension_dir|safe_mode"
            r"|register_globals|cgi\.force_redirect|suhosin\.[\w.]+)\s*=",
            "php.ini directive",
            85,
        ),
        # Gates: the readings below decide.
        ("call_gate", rf"\b(?:{_FUNCTION_WORDS})\s*(?:\(|/[*/]|#)", "PHP function call", 0),
        ("variable_call_gate", r"\$[\w$\[\]'\"{}@!+\-.>/* \t\r\n#]*\(", "variable function", 0),
        (
            "callee_gate",
            rf"(?:[(\['\"]|\*/)\s*(?:{_EXEC_WORDS})\s*['\"\])]|['\"]\s*\.\s*['\"]"
            r"|\w\s*\.\s*\(\s*\w+\s*\)\s*\.\s*\w",
            "built function name",
            0,
        ),
        ("upload_gate", r"\.\s*(?:php\d*|phtml|pht|phps|phpt|phar)\b|sess_[\w,-]{20}", "upload", 0),
    ),
)


class PhpInjection(ValueCheck):
    """PHP code injection: tags, dangerous calls, variable functions, wrappers and uploads."""

    id = "php"
    category = "injection"
    title = "PHP injection"
    description = "PHP code, wrappers and PHP file uploads in any request value"
    inspects_plain = True  # upload file names ("shell.php") are plain text

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        hit, gated = best_of(hits)
        if hit is not None:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        if not gated:
            return None
        text = value.text
        weak: Judged | None = None
        # A call of a known function always hits the call gate: without that hit, the
        # costly search for calls (a long JavaScript body has many "$(") is skipped.
        called = any(h.signature.name == "php.call_gate" for h in hits)
        for judged in (
            _upload(value),
            judge_built_callee(text),
            judge_variable_call(text),
            judge_calls(text) if called else None,
        ):
            if judged is not None and not judged[2]:
                return self.found(value, judged[0], judged[1], 85)
            weak = weak or judged
        if weak is not None and self.strict:
            return self.found(value, weak[0], weak[1], 60)
        return None


Judged = tuple[str, str, bool]  # what was recognised, the evidence, whether only for strict

_COMMENT: Final = r"(?:\s|/\*.*?\*/|(?://|#)[^\n]*\n)"
# A word called as a function (the word is then looked up in _FUNCTIONS): one pattern
# tried at each word, instead of every function name at each word, which costs
# milliseconds on a few kilobytes of prose.
_WORD_CALL: Final = re.compile(rf"\b(\w+)({_COMMENT}*)\(", re.DOTALL)
_PHP_ARGUMENT: Final = re.compile(r"\s*(?:['\"`$@]|\w+\s*\(|\(|\[)")
_BARE_WORD: Final = re.compile(r"\s*[a-z]+\s*\)", re.IGNORECASE)
_CODE_ARGUMENT: Final = re.compile(r"\s*(?:\)|['\"`$@\d(\[]|\w+\s*[(),])")
_SHELL_ARGUMENT: Final = re.compile(
    r"\s*(?:id|whoami|uname|ls|pwd|ifconfig|ipconfig|netstat|cat|wget|curl|nc|bash|sh|dir"
    r"|ping|echo)\b",
    re.IGNORECASE,
)


_METHOD_BEFORE: Final = re.compile(r"(?:\.|->)\s*$")
_INCLUDES: Final = frozenset({"include", "include_once", "require", "require_once"})
# What PHP includes: a variable, or a string naming a PHP file, a URL or a stream wrapper.
_INCLUDED_PHP: Final = re.compile(
    r"\s*(?:\$|['\"][^'\"]*(?:\.(?:php\d?|phtml|inc)\b|://|\b(?:php|data|expect|phar|zip):))",
    re.IGNORECASE,
)


def function_calls(text: str) -> Iterator[re.Match[str]]:
    """Each call of a known PHP function in ``text``, left to right: the name (group 1,
    any case), the spaces and comments before ``(`` (group 2).

    A word followed by ``(`` that names no such function is skipped from its end, so
    a call inside the comments after it (``foo /* system( */ (``) is still found.
    """
    position = 0
    while (call := _WORD_CALL.search(text, position)) is not None:
        if call.group(1).lower() in _FUNCTIONS:
            yield call
            position = call.end()
        else:
            position = call.end(1)


def judge_calls(text: str) -> Judged | None:
    """The strongest call of a known PHP function in ``text``."""
    best: Judged | None = None
    for call in function_calls(text):
        name = call.group(1).lower()
        if _METHOD_BEFORE.search(text, max(0, call.start() - 2), call.start()):
            continue  # re.exec(…), os.system(…): a method of another language's object
        argument = text[call.end() : call.end() + 40]
        if name in _INCLUDES and not _INCLUDED_PHP.match(argument):
            continue  # require('lodash') is JavaScript; PHP includes PHP files or URLs
        evidence = text[call.start() : call.end() + 20]
        commented = "/" in call.group(2) or "#" in call.group(2)
        if commented or name in _PHP_ONLY:
            return ("PHP function call", evidence, False)
        if name in _EXEC and (_PHP_ARGUMENT.match(argument) or _SHELL_ARGUMENT.match(argument)):
            return ("PHP code execution", evidence, False)
        spaced_word = call.group(2) and _BARE_WORD.match(argument)  # "the file (attached)"
        if _CODE_ARGUMENT.match(argument) and not spaced_word:
            best = best or ("PHP function call", evidence, True)
    return best


# Starts at the "$" (an "@" before it is read in Python): a leading optional group
# would make the regex engine try every position of a long value, not just each "$".
_VARIABLE_CALL: Final = re.compile(
    rf"\$(\$*)(\s*\{{[\w$'\"@.\s>-]*\}}|[a-z_]\w*)"
    rf"((?:{_COMMENT}|\[(?:[^\[\]]|\[[^\]]*\])*\]|\{{[^}}]*\}}|->\s*\$?\w+)*)\s*\(",
    re.IGNORECASE | re.DOTALL,
)
_OBFUSCATED_NAME: Final = re.compile(r"[_O0]+|_\w*|[O0_]{3,}\w*", re.IGNORECASE)


def judge_variable_call(text: str) -> Judged | None:
    """A call through a variable: ``$f(1)``; obfuscated forms count at ``balanced``."""
    best: Judged | None = None
    for call in _VARIABLE_CALL.finditer(text):
        variable_variable, name, rest = call.groups()
        silenced = text[call.start() - 1 : call.start()] == "@"
        start = call.start() - 1 if silenced else call.start()
        evidence = text[start : call.end()]
        before = text[max(0, start - 2) : start]
        obfuscated = (
            silenced
            or variable_variable
            or name.lstrip().startswith("{")
            or rest.strip()
            or "\n" in rest
            or _OBFUSCATED_NAME.fullmatch(name)
            or name == "GLOBALS"
            or before.endswith("::")
            or before.endswith(".")
            or _concatenated_after(text, call.end())
        )
        if obfuscated:
            return ("variable function call", evidence, False)
        best = best or ("variable function call", evidence, True)
    return best


def _concatenated_after(text: str, end: int) -> bool:
    """True when ``.$`` follows the arguments of the call whose ``(`` ends at ``end``
    (``$f($x) . $y``), found without copying the rest of a long value."""
    close = text.find(")", end)
    after = close + 1 if close >= 0 else end
    while after < len(text) and text[after].isspace():
        after += 1
    return text.startswith(".$", after)


_CAST: Final = re.compile(
    r"\(\s*(?:string|int|integer|array|object|bool|float)\s*\)", re.IGNORECASE
)
_INDEX: Final = re.compile(r"\[\s*\d+\s*\]|\{\s*\d+\s*\}")
# Every alternative starts with a literal (and \s\s*, not \s+, below): the regex engine
# then skips to where a match can start (see cmdi's shell-reading patterns).
_COMMENTS: Final = re.compile(r"/\*.*?\*/|//[^\n]*(?:\n|$)|#[^\n]*(?:\n|$)", re.DOTALL)
_DEFINE: Final = re.compile(r"define\s*\(\s*['\"](\w+)['\"]\s*,([^;]*)\)\s*;", re.IGNORECASE)
_ASSIGN: Final = re.compile(r"(\$\w+)\s*=\s*([^;=]*);")
_NOT_NAME: Final = re.compile(r"[^\w$]+")
_CALL_SITE: Final = re.compile(r"[)\]}'\"]\s*\(")


def judge_built_callee(text: str) -> Judged | None:
    """A dangerous function called through an expression: ``(sy.(st).em)('id')``."""
    code = _SPACES.sub(" ", _CAST.sub("", _COMMENTS.sub("", text)))
    names = {m.group(1).lower(): _name_of(m.group(2)) for m in _DEFINE.finditer(code)}
    names |= {m.group(1).lower(): _name_of(m.group(2)) for m in _ASSIGN.finditer(code)}
    openers = _bracket_openers(code)
    for site in itertools.islice(_CALL_SITE.finditer(code), _MAX_CALL_SITES):
        callee = _name_of(_callee(code, site.end() - 1, openers))
        callee = names.get(callee, callee)
        if callee in _EXEC or callee in _PHP_ONLY:
            return ("PHP code execution", code[max(0, site.start() - 40) : site.end() + 20], False)
    return None


# Bounds that keep the search linear on hostile text (e.g. "*)(" repeated): a built
# name is a few atoms (``("sy"."st"."em")``, ``$a.$b``), each a group, a string or a
# short word; longer chains spell no function name.
_MAX_CALL_SITES: Final = 1024
_MAX_ATOMS: Final = 8
_MAX_WORD: Final = 64
_SPACES: Final = re.compile(r"\s\s*")
_BRACKETS: Final = re.compile(r"[()\[\]{}]")
_NAME_SEPARATORS: Final = re.compile(r"[-_.]")
_OPENING: Final = {")": "(", "]": "[", "}": "{"}


def _name_of(expression: str) -> str:
    """The function name an expression of literals, concatenations and indexes spells."""
    return _NOT_NAME.sub("", _INDEX.sub("", expression)).lower()


def _bracket_openers(code: str) -> dict[int, int]:
    """For each closing bracket, where its opening bracket of the same kind is (0 if none)."""
    stacks: dict[str, list[int]] = {"(": [], "[": [], "{": []}
    openers: dict[int, int] = {}
    for match in _BRACKETS.finditer(code):
        char, index = match.group(), match.start()
        if char in stacks:
            stacks[char].append(index)
        else:
            stack = stacks[_OPENING[char]]
            openers[index] = stack.pop() if stack else 0
    return openers


def _callee(code: str, paren: int, openers: dict[int, int]) -> str:
    """The expression called by the ``(`` at ``paren``: atoms chained by ``.`` or indexes."""
    i = paren - 1
    if i >= 0 and code[i] == " ":
        i -= 1
    end = i + 1
    for _ in range(_MAX_ATOMS):
        if i < 0:
            break
        start = _atom_start(code, i, openers)
        if start is None:
            return ""
        j = start - 1
        if j >= 0 and code[j] == " ":
            j -= 1
        if j >= 0 and (code[j] == "." or code[j] in ")]}"):
            i = j - 1 if code[j] == "." else j
            if i >= 0 and code[i] == " ":
                i -= 1
            continue
        i = start - 1
        break
    else:
        return ""  # a longer chain spells no function name
    return code[i + 1 : end]


def _atom_start(code: str, i: int, openers: dict[int, int]) -> int | None:
    """Where the atom ending at ``i`` starts: a bracket group, a string or a word (``None``
    for a word too long to be part of a function name)."""
    closing = code[i]
    if closing in ")]}":
        return openers.get(i, 0)
    if closing in "'\"":
        return max(code.rfind(closing, 0, i), 0)
    start = i
    while start > 0 and (code[start - 1].isalnum() or code[start - 1] in "_$"):
        start -= 1
        if i - start > _MAX_WORD:
            return None
    return start


def _upload(value: InputValue) -> Judged | None:
    """A PHP script or session file name in an upload's file name."""
    if not _is_file_name(value):
        return None
    text = value.text.strip()
    if _UPLOAD_EXTENSION.search(text):
        return ("PHP file upload", text, False)
    if _SESSION_FILE.search(text):
        return ("PHP session file upload", text, False)
    return None


def _is_file_name(value: InputValue) -> bool:
    location = value.location
    if location.source is Source.MULTIPART_NAME:
        return True
    if location.source is not Source.HEADER:
        return False
    return "filename" in _NAME_SEPARATORS.sub("", (location.name or "").lower())


register(PhpInjection)
