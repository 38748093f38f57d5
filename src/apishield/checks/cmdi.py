"""OS command injection: shell separators or substitution followed by a command.

Values are matched as written and, when they hold quoting or variable tricks,
once more after removing them (``c'a't`` → ``cat``, ``$u/bin$u/id`` → ``/bin/id``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from apishield.checks import ValueCheck, register
from apishield.findings import Finding
from apishield.inputs import InputValue
from apishield.signatures import (
    BEGIN,
    END,
    Hit,
    best_of,
    register_check_signatures,
)

# Commands recognisable on their own right after a separator ("; id", "| whoami").
_ALONE = (
    r"(?:id|whoami|uname|ifconfig|ipconfig|netstat|pwd|ls|printenv|hostname|systeminfo"
    r"|tasklist|ver|getuid|ps|dir)"
)
# Commands that need a shell-like argument to count ("; cat /etc/passwd").
_WITH_ARG = (
    r"(?:cat|tac|head|tail|more|less|nl|ls|dir|echo|printf|ping|nslookup|dig|curl|wget"
    r"|nc|ncat|netcat|telnet|bash|sh|zsh|ksh|csh|dash|python[23]?|perl|ruby|php|node|lua"
    r"|chmod|chown|rm|mv|cp|touch|mkdir|kill|sleep|find|grep|awk|sed|xargs|base64|sudo|su"
    r"|crontab|tftp|ftp|ssh|scp|socat|nohup|exec|eval|cmd|powershell|pwsh|certutil"
    r"|bitsadmin|type|wmic|mshta|rundll32|regsvr32|cscript|wscript|net|reg|start|timeout)"
)
_SEP = r"(?:[;|\n`]|&&?|\$\()"
_ARG = r"\s+(?:[-/$~.'\"\\%]|[a-z]:[\\/])[^\s;|&`]*"
_END = rf"(?:\s*{END}|\s*[;|&`)<>]|\\[nr])"  # a written "\n" ends a line in many sinks
_DEOBFUSCATE = re.compile(r"\$\{[^}\s]{0,20}\}|\$[a-z_]\w*|\$[@*#?\d]|['\"\\^]", re.IGNORECASE)
_IFS = re.compile(r"\$\{?IFS\}?(?:\$\d)?", re.IGNORECASE)
_TRICKS = frozenset("'\"\\$^")

register_check_signatures(
    "cmdi",
    (
        (
            "substitution",
            rf"`\s*(?:{_ALONE}|{_WITH_ARG})(?:\s[^`\x00]*)?`|\$\(\s*(?:{_ALONE}|{_WITH_ARG})\b",
            "command substitution",
            95,
        ),
        ("chained", rf"{_SEP}\s*{_ALONE}{_END}", "chained command", 90),
        ("chained_arg", rf"{_SEP}\s*{_WITH_ARG}{_ARG}", "chained command", 90),
        (
            "binary_path",
            rf"(?:{BEGIN}|[;|&`(\n]\s*)/(?:usr/(?:local/)?)?s?bin/\w",
            "binary path",
            85,
        ),
        ("ifs", r"\$\{IFS\}|\$IFS\b", "$IFS word splitting", 90),
        ("dev_tcp", r"/dev/(?:tcp|udp)/", "reverse shell", 95),
        ("netcat_exec", r"\bnc(?:at)?(?:\s+-\w+)*\s+-[ec]\s", "reverse shell", 95),
        ("windows_shell", r"\bcmd(?:\.exe)?\s*/[ck]\b", "Windows shell", 95),
        (
            "powershell",
            r"\b(?:powershell|pwsh)(?:\.exe)?\s+-(?:e|enc|encodedcommand|c|command|nop|w)\b",
            "PowerShell",
            90,
        ),
        ("shellshock", r"\(\s*\)\s*\{\s*:?\s*;?\s*\}\s*;", "Shellshock function definition", 95),
        ("function_value", rf"{BEGIN}\s*\(\s*\)[\s.]*\{{", "Shellshock function definition", 90),
        (
            "ssi",
            r"<!--\s*#\s*(?:exec|include|echo|printenv|config|fsize|flastmod)\b",
            "server-side include",
            95,
        ),
        (
            "php_exec",
            r"\b(?:system|passthru|shell_exec|exec|popen|proc_open|pcntl_exec)\s*\(\s*['\"$]"
            r"|\bphpinfo\s*\(\s*\)|<\?php\b|\$\{\s*@|\{\s*\$\{",
            "PHP code execution",
            85,
        ),
        (
            "php_input",
            r"\$_(?:GET|POST|REQUEST|SERVER|COOKIE|FILES)\s*\[",
            "PHP request variable",
            80,
        ),
    ),
)


@register
class CommandInjection(ValueCheck):
    """OS command injection through shell separators, substitution or shell tricks."""

    id = "cmdi"
    category = "injection"
    title = "Command injection"
    description = "Shell command injection in any request value"

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        text = value.text
        hit, _ = best_of(hits)
        if hit is None and self.wants(text):
            hit, _ = self.signature_set.best(deobfuscate(text))
        if hit is None:
            return None
        return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)

    def wants(self, text: str) -> bool:
        """Values with quoting or expansion tricks are rescanned without them."""
        return not _TRICKS.isdisjoint(text)


def deobfuscate(text: str) -> str:
    """``text`` with shell quoting, escapes and variable expansions removed."""
    return _DEOBFUSCATE.sub("", _IFS.sub(" ", text))
