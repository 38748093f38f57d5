"""OS command injection: shell separators, substitution or shell syntax around a command.

Signatures find the unmistakable forms (``; cat /etc/passwd``, ``$(id)``, reverse
shells, Windows ``FOR ... DO``); gate signatures send the rest to a small shell
reading (:func:`analyse`): the value is split into simple commands at separators,
with quoting tricks, unset variables and brace expansion resolved the way a shell
would (``c'a't`` → ``cat``, ``$u/bin$u/id`` → ``/bin/id``, ``{cat,/etc/passwd}``),
and each command word is judged against a vocabulary of real commands. Words after
a separator count only when they are commands with shell-like arguments, so prose
("rock & roll; fun", "cat lovers welcome") stays clean. A value that simply *is* a
command line (``ls -la /var/www``) is weaker evidence, reported at ``strict``.
Mail protocol commands after line breaks are the crlf check's.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from apishield.checks import ValueCheck, register, word_set
from apishield.findings import Finding
from apishield.inputs import InputValue
from apishield.signatures import BEGIN, END, Hit, best_of, longest_first, register_check_signatures

# Commands recognisable on their own right after a separator ("; id", "| whoami").
_ALONE_WORDS: Final = word_set(
    "id whoami uname ifconfig ipconfig netstat pwd ls ll printenv hostname systeminfo tasklist"
    " getuid ps dir ver env lastlog lastlogin htop aptitude visudo who uptime lsof nproc lscpu"
    " chef-shell ansible-console iex iwr irm iwmi rmt-tar rmt-dump"
)
# Commands whose name is no English word: any argument makes them count after a separator.
_DISTINCT_WORDS: Final = word_set(
    "whoami uname ifconfig ipconfig netstat wget curl ncat netcat socat telnet nslookup bash"
    " zsh ksh csh tcsh sh busybox chmod chown chgrp crontab useradd adduser usermod sudo"
    " pip3 pipx gcc c89 c99 clang"
    " gdb strace ltrace nohup base32 base64 xxd cpulimit ssh scp sftp ssh-copy-id rsync tftp"
    " uconv zstdcat gunzip unxz bsdtar zcat bzcat xzcat lastlog lastlogin htop aptitude apt-get"
    " dnf rpm dpkg systemctl visudo cscli rmt rmt-tar rmt-dump printenv tasklist systeminfo"
    " certutil bitsadmin powershell pwsh mshta rundll32 regsvr32 cscript wscript wmic regedit"
    " bcdboot iwr iex iwmi irm lsof killall pkill nmap tcpdump openssl mkfifo mknod insmod"
    " modprobe setenforce iptables chattr shred vim gawk xargs egrep hexdump whereis"
    " ansible ansible-config ansible-galaxy ansible-console ansible-doc ansible-inventory"
    " ansible-pull ansible-vault ansible-playbook chef-vault chef-shell chef-run"
    " chef-client aa-disable aa-enforce aa-complain ifup ifdown getent"
)
# Commands that are also words ("cat", "more", "time"): they need shell-like arguments.
_COMMON_WORDS: Final = word_set(
    "cat tac head tail more less nl ls dir echo printf ping dig rm mv cp touch mkdir kill sleep"
    " find grep sort cut tr rev tee column fold comm bridge date time who top type start net"
    " timeout cd vi ex rc cmd exec eval source ln file diff wc dd watch mail expand paste split"
    " awk sed env id ps ver pwd ll uptime nice alias export unset trap set reg md del copy"
    " python python2 python3 perl ruby php node nodejs lua irb pip yum dash flock perf chef ip nc"
)
_COMMANDS: Final = _ALONE_WORDS | _DISTINCT_WORDS | _COMMON_WORDS
# Words that run the command after them ("time whoami", "nohup sh -c ...").
_WRAPPERS: Final = word_set(
    "time nohup strace ltrace timeout nice xargs busybox stdbuf setsid exec sudo doas env"
    " .shell .system .sh . source command builtin"
)
# Wrappers no text uses as a word ("nohup who"; but "time who" is prose too).
_DISTINCT_WRAPPERS: Final = word_set(
    "nohup strace ltrace xargs stdbuf setsid sudo doas .shell .system .sh"
)
_SHELLS: Final = word_set("sh bash zsh ksh csh tcsh dash ash fish busybox")
# Interpreters and the option that makes them run the next argument as code.
_CODE_FLAGS: Final = {
    **dict.fromkeys(_SHELLS, frozenset({"-c"})),
    **dict.fromkeys(("python", "python2", "python3"), frozenset({"-c"})),
    **dict.fromkeys(("perl", "ruby", "node", "nodejs", "lua"), frozenset({"-e", "-E"})),
    "php": frozenset({"-r"}),
    "gdb": frozenset({"-ex"}),
    "find": frozenset({"-exec", "-execdir"}),
    "nc": frozenset({"-e", "-c"}),
    "ncat": frozenset({"-e", "-c"}),
    **dict.fromkeys(("c89", "c99", "gcc", "cc", "clang"), frozenset({"-wrapper"})),
}
# Files and binaries a path glob is resolved against ("/???/??t" → "/bin/cat").
_BINARIES: Final = (
    "sh bash dash zsh ksh cat ls id nc netcat ncat uname whoami wget curl python perl php"
)
_SENSITIVE_PATHS: Final = tuple(
    [f"/etc/{n}" for n in ("passwd", "shadow", "group", "hosts", "sudoers", "crontab", "issue")]
    + [
        f"{d}/{b}"
        for d in ("/bin", "/usr/bin", "/sbin", "/usr/sbin", "/usr/local/bin")
        for b in _BINARIES.split()
    ]
    + ["/proc/self/environ", "/dev/tcp"]
)
# Windows commands whose first argument says they are commands ("net view", "reg query").
_SUBCOMMANDS: Final = {
    "net": word_set(
        "view user users localgroup group share use session accounts config start stop"
    ),
    "reg": word_set("query add delete export import save"),
}
_SENSITIVE_ARGS: Final = word_set("passwd shadow sudoers authorized_keys id_rsa .htpasswd")

_SEP: Final = r"(?:[;|\n`]|&&?|\$\(|[<>]\()"
# Command words in groups of alternatives small enough for one hyperscan pattern each.
_CMD: Final = sorted((re.escape(w) for w in _COMMANDS | _WRAPPERS), key=longest_first)
_COMMAND_GROUPS: Final = tuple("|".join(_CMD[i::4]) for i in range(4))
_ALONE: Final = (
    r"(?:id|whoami|uname|ifconfig|ipconfig|netstat|pwd|ls|printenv|hostname|systeminfo"
    r"|tasklist|ver|getuid|ps|dir)"
)
_WITH_ARG: Final = (
    r"(?:cat|tac|head|tail|more|less|nl|ls|dir|echo|printf|ping|nslookup|dig|curl|wget"
    r"|nc|ncat|netcat|telnet|bash|sh|zsh|ksh|csh|dash|python[23]?|perl|ruby|php|node|lua"
    r"|chmod|chown|rm|mv|cp|touch|mkdir|kill|sleep|find|grep|awk|sed|xargs|base64|sudo|su"
    r"|crontab|tftp|ftp|ssh|scp|socat|nohup|exec|eval|cmd|powershell|pwsh|certutil"
    r"|bitsadmin|type|wmic|mshta|rundll32|regsvr32|cscript|wscript|net|reg|start|timeout)"
)
_ARG: Final = r"\s+(?:-\w|[/$~.'\"\\%]|[a-z]:[\\/])[^\s;|&`]*"
_END: Final = rf"(?:\s*{END}|\s*[;|&`)<>]|\\[nr])"  # a written "\n" ends a line in many sinks
_START: Final = rf"(?:{BEGIN}|{_SEP}|[=(&|])[\s+]*"
_BATCH_VAR: Final = r"%%?[^\s%]*"
_BATCH_COND: Final = (
    r"if(?:\s*/i\b|(?:\s+not)?\s+(?:(?:exist|errorlevel|cmdextversion)\s+\S"
    r"|defined\s+\w+\s+(?:\(|@?(?:echo|set|goto|call|exit|cmd)\b)"
    r"|\S+\s+(?:equ|neq|lss|leq|gtr|geq)\s+\S|[^\s=]*%[^\s=]*\s*=="
    r"|[\[\"][^\s=]*\s*==\s*[\[\"]))"
)
_BATCH_IF: Final = re.compile(rf"(?:^|[&|;(\n])\s*@?{_BATCH_COND}", re.IGNORECASE)
# Gates whose hit is verified by a Python pattern: as a signature it would make the
# hyperscan database several times slower to compile.
_VERIFIED: Final = {"cmdi.batch_if_gate": _BATCH_IF}

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
            rf"(?:{BEGIN}|[;|&`(\n=]\s*|\\[nr])/(?:usr/(?:local/)?)?s?bin/\w",
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
        (
            "powershell_cmdlet",
            r"\b(?:invoke-(?:webrequest|expression|restmethod|command|wmimethod|item)"
            r"|new-object\s+(?:system\.)?net\.webclient|start-process)"
            r"\s+(?:-\w|https?://|\(|\$|['\"]|[\w.-]+\.ps1\b)",
            "PowerShell",
            90,
        ),
        (
            "batch_for",
            rf"\bfor(?:\s+/[a-z](?:\s+\"[^\"\x00]*\"|\s+[a-z]:\\[^\s\x00]*)?)*\s+{_BATCH_VAR}"
            r"\s+in\s*\([^)\x00]*\)\s*do\b",
            "batch FOR loop",
            90,
        ),
        ("batch_if_gate", rf"(?:{BEGIN}|[&|;(\n])\s*@?if[\s/]", "batch IF command", 0),
        ("shellshock", r"\(\s*\)\s*\{\s*:?\s*;?\s*\}\s*;", "Shellshock function definition", 95),
        ("function_value", rf"{BEGIN}\s*\(\s*\)[\s.]*\{{", "Shellshock function definition", 90),
        (
            "ssi",
            r"<!--\s*#\s*(?:exec|include|echo|printenv|config|fsize|flastmod)\b",
            "server-side include",
            95,
        ),
        # Gates: a command word at a command position, or shell syntax the analysis reads.
        *(
            (
                f"command_gate_{index}",
                rf"(?:{BEGIN}|[;|&\n`(=<>])(?:[\s'\"\\+]|\\[nr])*(?:{words})(?:[\s'\"\\<|&;`)+\x00]|$)",
                "command",
                0,
            )
            for index, words in enumerate(_COMMAND_GROUPS)
        ),
        (
            "trick_gate",
            rf"{_START}(?:['\"\\]*[a-z0-9]+(?:['\"\\^]+[a-z0-9]+)+|[\w/]*\$[a-z_@*#?!$\d{{-]"
            r"|\w+(?:``|\$\(\)|[<>]\(\)))",
            "quoting trick",
            0,
        ),
        (  # bracket contents are glob syntax only: a class of almost any byte there
            # made this gate a fifth of the whole database's scan time
            "glob_gate",
            r"/[\w.-]*(?:\[[\w.?*!^:\\-]*\]|\?|\*)[\w.?*\[\]-]*/|/[\w.-]*\[[\w.?*!^:\\-]{1,12}\]",
            "path glob",
            0,
        ),
        ("brace_gate", r"\{[\w\-/.$'\"?*#]*,[\w\-/.$'\"?*#,]*\}", "brace expansion", 0),
        ("function_gate", r"[\w:.][\s+]*\([\s+]*\)[\s+]*\{[^}\x00]*[|&]", "shell function", 0),
        (
            "path_gate",
            r"(?:[;|&\n`(=<>]|\\[nr])[\s+]*/?(?:usr/)?(?:local/)?s?bin/\w",
            "binary path",
            0,
        ),
        ("heredoc_gate", r"\w\s*<<<", "here-string", 0),
        ("alias_gate", rf"{_START}alias\s+(?:[-+]\w+\s+)*['\"]?[\w.-]+['\"]?=", "alias", 0),
        ("wrapper_gate", r"-wrapper\s", "compiler wrapper", 0),
        ("shell_var_gate", r"\$\{?SHELL\}?\s+-c\b", "shell invocation", 0),
    ),
)


@dataclass(frozen=True, slots=True)
class Judgement:
    """What :func:`analyse` recognised: a kind, the evidence, and whether only ``strict`` acts."""

    kind: str
    evidence: str
    score: int
    strict: bool = False


class CommandInjection(ValueCheck):
    """OS command injection through shell separators, substitution or shell tricks."""

    id = "cmdi"
    category = "injection"
    title = "Command injection"
    description = "Shell command injection in any request value"

    def inspect(self, value: InputValue, hits: Sequence[Hit]) -> Finding | None:
        hit, gated = best_of(hits)
        if hit is not None and (hit.signature.score >= 90 or not gated):
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        judged = _verified(value.text, hits) if gated else None
        if judged is None and gated:
            judged = _analyse_near(value.text, hits)
        if judged is not None and (self.strict or not judged.strict):
            return self.found(value, judged.kind, judged.evidence, judged.score)
        if hit is not None:
            return self.found(value, hit.signature.label, hit.evidence, hit.signature.score)
        return None


def _verified(text: str, hits: Sequence[Hit]) -> Judgement | None:
    """The first gate hit that its Python pattern confirms, as a judgement."""
    for hit in hits:
        pattern = _VERIFIED.get(hit.signature.name)
        found = pattern.search(text) if pattern is not None else None
        if found is not None:
            return Judgement(hit.signature.label, found.group(0).strip(), 85)
    return None


def _analyse_near(text: str, hits: Sequence[Hit]) -> Judgement | None:
    """:func:`analyse` of ``text``, or of the stretches around its gate hits when it is long."""
    if len(text) <= _WINDOW_AFTER * 4:
        return analyse(text)
    starts = sorted({h.start for h in hits if h.signature.score == 0})[:_MAX_WINDOWS]
    best: Judgement | None = None
    end = -1
    for start in starts:
        if start < end:
            continue
        end = start + _WINDOW_AFTER
        judged = analyse(text[max(0, start - _WINDOW_BEFORE) : end])
        if judged is not None and not judged.strict:
            return judged
        best = best or judged
    return best


# -- the shell reading -------------------------------------------------------------------

# Python's regex engine jumps straight to the places a match can start only when every
# alternative begins with a literal character (or the pattern with one character class);
# otherwise it tries every position of the text, several times slower. The patterns
# searched over whole values are spelled that way: ``<\(|>\(``, not ``[<>]\(``.
# A written \n or \r: after a separator (or first), or before one (or last).
_WRITTEN_NEWLINE: Final = re.compile(r"\\(?:(?<![^;|&\s]\\)[nr]|[nr](?=[;|&\s]|$))")
_IFS: Final = re.compile(r"\$\{?IFS\}?(?:\$\d)?", re.IGNORECASE)
# A name (first, or after a separator), =, its value. Spelled without IGNORECASE so
# that the search skips to letters: [a-z_] ignoring case also takes these four.
_ASSIGNMENT: Final = re.compile(
    r"([A-Za-z_\u0130\u0131\u017f\u212a](?<![^;&|\s].)\w*)=((?:[^\s;&|`\\]+|\\.)*)"
)
_MAX_BRACES: Final = 4
# Long values are read only around their gate hits: this much text before and after.
_WINDOW_BEFORE: Final = 64
_WINDOW_AFTER: Final = 256
_MAX_WINDOWS: Final = 16
_LINE_ENDS: Final = frozenset(("", ";", "|", "||", "&", "&&"))
_ESCAPED: Final = re.compile(r"\\(.)")
_VARIABLE: Final = re.compile(r"\$\{([a-z_]\w*)\}|\$([a-z_]\w*)", re.IGNORECASE)
_TRICK: Final = re.compile(
    r"\$(?:(?=['\"])|\{[^}\s]{0,20}\}|[@*#?!$\d_-]|\(\))|``|<\(\)|>\(\)|'|\"|\\|\^"
)
_SPLIT: Final = re.compile(r"(;|\|\||\||&&|&|\n|\r|`|\$\(|<\(|>\(|\(|\)|<<<|\{|\})")
_BRACE: Final = re.compile(r"\{([^{}\s,]*(?:,[^{}\s,]*)+)\}")
_SPACE: Final = re.compile(r"\s")
_ONE_CHAR_CLASS: Final = re.compile(r"\[([^\]!^])\]")
_VERSIONED: Final = re.compile(r"([a-z][a-z-]*?)\d+(?:\.\d+)*")
_SHELL_ARG: Final = re.compile(
    r"-{1,2}\w|\+\w|[/~.$%\\'\"*]|[a-z]:[\\/]|\w+://|\d+\.\d+\.\d+\.\d+|[<>]", re.IGNORECASE
)
# A function definition; a name starts only where a word does, so a long word is
# read once, not from each of its characters.
_FUNCTION: Final = re.compile(r"(?<![\w:.])([\w:.]+)\s*\(\s*\)\s*\{(.*?)\}", re.DOTALL)
# What every function definition holds, with a literal first character: searched first.
_FUNCTION_BODY: Final = re.compile(r"\(\s*\)\s*\{")
_ASSIGNMENT_WORD: Final = re.compile(r"[a-z_]\w*=", re.IGNORECASE)
# Words repeat across commands, readings and values: their cleaned forms and names are
# remembered (pure functions of the word).
_REMEMBERED_WORDS: Final = 1024
_ALIAS: Final = re.compile(
    r"alias\s+(?:[-+]\w+\s+)*['\"]?([\w.-]+)['\"]?=([^\s;&|]+)", re.IGNORECASE
)
_KEY_VALUE: Final = re.compile(r"[\w.\[\]-]+=(?=\S)")
_ALNUM: Final = re.compile(r"[a-z0-9]")
_PROSE_WORDS: Final = 3  # plain words after a command name on a new line: a sentence, not arguments
_TRICK_CHAR: Final = re.compile(r"'|\"|\\|`|\^|\$.|<\(|>\(")
_WRITTEN_SPLIT: Final = re.compile(r"[\s;|&{}+][\s;|&{}+]*")
_BRACE_COMMAND: Final = re.compile(r"(?:^|[;&|\n`(])\s*([^\s{]*\{[^{}\s,]*(?:,[^{}\s,]*)+\}\S*)")
_COMPILER_WRAPPER: Final = re.compile(r"-wrapper\s+(?:/\S*/)?(?:sh|bash|dash|zsh|ksh),-c\b")
_WRAPPER_OPTION: Final = re.compile(r"-[\w-]+|\d+[smhd]?")
_SHELL_VARIABLE: Final = re.compile(r"\$\{?SHELL\}?\s+-c\b")
_DEV_TCP: Final = re.compile(r"/dev/(?:tcp|udp)/\S+")
_GLOB_PATH: Final = re.compile(r"/[^\s;|&`'\"<>(){}]*")
_BRACKET_SET: Final = re.compile(r"\[[^\]]*\]")
_GLOB_START: Final = re.compile(r"[?*\[]")  # a character that makes a path a glob


class _Command:
    """One simple command: its words, what came before it, and its raw text.

    A plain class, not a NamedTuple: compiled, it is made without a Python-level
    ``__new__`` (a value can hold hundreds of commands).
    """

    __slots__ = ("after", "raw", "rest", "then", "words")

    def __init__(self, words: tuple[str, ...], after: str, raw: str, then: str) -> None:
        self.words = words
        self.after = after  # the separator before it; "" at the start of the value
        self.raw = raw
        self.then = then  # the separator after it
        self.rest = then  # every separator after it, up to the next command


def analyse(text: str) -> Judgement | None:
    """Read ``text`` as a shell would and judge its commands; None when none is one."""
    if " " not in text and "+" in text:
        text = text.replace("+", " ")
    text = _WRITTEN_NEWLINE.sub("\n", text)
    unquoted = _unquote(text)
    found = _special_forms(text, unquoted)
    if found is not None:
        return found
    readings = [(text, unquoted)]
    key_value = _KEY_VALUE.match(text)
    if key_value is not None:
        rest = text[key_value.end() :]
        readings.append((rest, _unquote(rest)))
    best: Judgement | None = None
    for reading, reading_unquoted in readings:
        tricked = _tricked_words(reading)
        for commands, hidden in (
            (_commands(reading), frozenset[str]()),
            (_commands(_expand_braces(reading_unquoted)), tricked),
        ):
            for index, command in enumerate(commands):
                following = commands[index + 1] if index + 1 < len(commands) else None
                judged = _judge(command, following, hidden)
                if judged is not None and not judged.strict:
                    return judged
                best = best or judged
    return best


def _special_forms(text: str, unquoted: str) -> Judgement | None:
    """Fork bombs, aliases, ``$SHELL -c``, reverse shells and globs of sensitive files
    (``unquoted`` is :func:`_unquote` of ``text``)."""
    if _FUNCTION_BODY.search(text) is not None:
        for function in _FUNCTION.finditer(text):
            name = re.escape(function.group(1))
            if re.search(rf"(?<![\w.:]){name}\s*(?:\(\s*\)\s*)?[|&]", function.group(2)):
                return Judgement("fork bomb", function.group(0), 95)
    for alias in _ALIAS.finditer(text):
        if _base(_clean_word(alias.group(2))) in _COMMANDS:
            return Judgement("command alias", alias.group(0), 90)
    shell = _SHELL_VARIABLE.search(text) or _COMPILER_WRAPPER.search(text)
    if shell is not None:
        return Judgement("shell invocation", shell.group(0), 90)
    for braced in _BRACE_COMMAND.finditer(unquoted) if "{" in unquoted else ():
        expanded = _expand_braces(braced.group(1)).split()
        if expanded and _base(expanded[0]) in _COMMANDS:
            return Judgement("brace-expanded command", braced.group(1), 90)
    resolved = _expand_braces(unquoted)
    reverse = _DEV_TCP.search(resolved)
    if reverse is not None:
        return Judgement("reverse shell", reverse.group(0), 95)
    if _GLOB_START.search(resolved) is None:
        return None
    for path in _GLOB_PATH.finditer(resolved):
        sensitive = _glob_target(path.group(0))
        if sensitive is not None:
            return Judgement(f"path glob for {sensitive}", path.group(0), 90)
    return None


def _glob_target(path: str) -> str | None:
    """The sensitive file or binary that the glob ``path`` names, if any."""
    pattern = path.lower().replace("[?]", "?")
    glob = _GLOB_START.search(pattern)
    if glob is None:
        return None
    depth = _BRACKET_SET.sub("x", pattern).count("/")  # slashes in [...] do not count
    # What comes before the first glob character is literal: a cheap test that spares
    # compiling the glob (fnmatch) for paths such as "/search?q=..."
    literal = pattern[: glob.start()]
    for sensitive in _SENSITIVE_PATHS:
        if (
            sensitive.startswith(literal)
            and sensitive.count("/") == depth
            and fnmatch.fnmatchcase(sensitive, pattern)
        ):
            return sensitive
    return None


def _unquote(text: str) -> str:
    """``text`` with variables substituted (unset ones empty) and quoting tricks removed."""
    text = _IFS.sub(" ", text)
    variables = (  # only a $ reads them
        {m.group(1): _ESCAPED.sub(r"\1", m.group(2)) for m in _ASSIGNMENT.finditer(text)}
        if "=" in text and "$" in text
        else None
    )
    if variables:
        text = _VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), m.group(0)), text)
    return _VARIABLE.sub("", _TRICK.sub("", text))


def _tricked_words(text: str) -> frozenset[str]:
    """The words of ``text`` that hide a quote, escape or expansion after their first letter,
    as a shell reads them (``c'a't`` → ``cat``, ``ping$()`` → ``ping``)."""
    if _TRICK_CHAR.search(text) is None:
        return frozenset()  # no word of it hides one
    return frozenset(
        _base(_VARIABLE.sub("", _clean_word(word)))
        for word in _WRITTEN_SPLIT.split(text.lower())
        if _has_inner_trick(word)
    )


def _has_inner_trick(word: str) -> bool:
    """A quote, escape or expansion after the word's first letter, with its quotes closed
    inside the word: ``I'd`` leaves a quote open, which a shell refuses to run."""
    first = _ALNUM.search(word)
    return (
        first is not None
        and _TRICK_CHAR.search(word, first.end()) is not None
        and word.count("'") % 2 == 0
        and word.count('"') % 2 == 0
    )


def _expand_braces(text: str) -> str:
    """Brace expansion of words: ``{cat,/etc/passwd}`` → ``cat /etc/passwd``.

    Only a few groups are expanded: each one multiplies the words it is in.
    """
    if text.count("{") > _MAX_BRACES:
        return text
    for _ in range(_MAX_BRACES):
        group = _BRACE.search(text)
        if group is None:
            break
        start = max(text.rfind(c, 0, group.start()) for c in " \t\n") + 1
        end = _SPACE.search(text, group.end())
        stop = end.start() if end is not None else len(text)
        prefix, suffix = text[start : group.start()], text[group.end() : stop]
        words = (f"{prefix}{part}{suffix}" for part in group.group(1).split(","))
        text = text[:start] + " ".join(w for w in words if w) + text[stop:]
    return text


def _commands(text: str) -> list[_Command]:
    """``text`` split into simple commands at shell separators.

    A command's ``then`` is its first separator; ``rest`` all the separators up to the
    next command or the end (``"\n}"`` for a word alone on a line inside braces).
    """
    parts = _SPLIT.split(text)
    commands: list[_Command] = []
    after = ""
    for index in range(0, len(parts), 2):
        raw = parts[index]
        then = parts[index + 1] if index + 1 < len(parts) else ""
        if raw.strip():
            commands.append(_Command(tuple(raw.split()), after, raw, then))
        elif commands:
            commands[-1].rest += then
        after = then or after
    return commands


def _judge(
    command: _Command, following: _Command | None, tricked: frozenset[str]
) -> Judgement | None:
    """Whether one simple command is a real command in a place a shell would run it.

    ``tricked`` holds the command words the value hides behind quoting tricks, when
    ``command`` comes from its resolved reading (empty for the value as written).
    """
    unassigned = [w for w in command.words if not _is_assignment(w)]
    if not unassigned:
        return None
    evidence = command.raw.strip()[:120]
    if _pipes_to_shell(command, following):
        return Judgement("pipe into a shell", evidence, 95)
    if _runs_code(_base(_clean_word(unassigned[0])), unassigned[1:]):
        return Judgement("shell invocation", evidence, 95)
    words, wrapper = _unwrap(unassigned)
    word = _clean_word(words[0])
    name = _base(word)
    if name not in _COMMANDS:
        return None
    args = words[1:]
    if _runs_code(name, args):
        return Judgement("shell invocation", evidence, 95)
    if (len(name) > 2 or name in _ALONE_WORDS) and (
        _base(_clean_word(unassigned[0])) in tricked or name in tricked
    ):
        return Judgement("obfuscated command", evidence, 90)
    if command.then == "<<<":
        return Judgement("here-string to a command", evidence, 90)
    shell_args = any(
        _SHELL_ARG.match(a)
        or a.lower() in _SENSITIVE_ARGS
        or a.lower() in _SUBCOMMANDS.get(name, ())
        for a in args
    )
    distinct = name in _DISTINCT_WORDS or (name in _ALONE_WORDS and name not in _COMMON_WORDS)
    substituted = command.after in ("$(", "<(", ">(")
    if not (substituted or (name in _ALONE_WORDS if not args else distinct or shell_args)):
        return None
    ended = command.rest.strip("\n") in _LINE_ENDS and (following is None or command.rest != "\n")
    if command.after == "\n" and not args and not ended:
        return None  # a word alone on a line is a list item, not a command
    if command.after == "\n" and len(args) >= _PROSE_WORDS and all(a.isalpha() for a in args):
        return None  # a line of prose that starts with a command's name ("WScript is the ...")
    if command.after and command.after not in ("(", ")", "{", "}"):
        return Judgement("chained command", evidence, 90)
    if wrapper and (distinct or wrapper in _DISTINCT_WRAPPERS):
        return Judgement("wrapped command", evidence, 85)
    if distinct and shell_args:
        return Judgement("command line", evidence, 75)
    if args and (shell_args or distinct):
        return Judgement("command line", evidence, 70, strict=True)
    return None


def _unwrap(words: list[str]) -> tuple[list[str], str]:
    """``words`` without leading wrappers (``time``, ``nohup -x``) when a command follows,
    and the first wrapper ("" when there was none)."""
    rest = words
    while len(rest) > 1 and _clean_word(rest[0]).lower() in _WRAPPERS:
        rest = rest[1:]
        while len(rest) > 1 and _WRAPPER_OPTION.fullmatch(rest[0]):
            rest = rest[1:]
    if rest is words or _base(_clean_word(rest[0])) not in _COMMANDS:
        return words, ""
    return rest, _clean_word(words[0]).lower()


def _runs_code(name: str, args: Sequence[str]) -> bool:
    """True when ``name`` runs its arguments as code (``sh -c``, ``perl -e``, ``vim -c:!``)."""
    flags = _CODE_FLAGS.get(name)
    lowered = [a.lower() for a in args]
    if flags is not None and any(a in flags or a.startswith("-c:") for a in lowered):
        return True
    if name in ("powershell", "pwsh") and args:
        return True
    return name in ("vi", "vim", "ex", "gdb") and any("!" in a for a in args)


def _pipes_to_shell(command: _Command, following: _Command | None) -> bool:
    return (
        command.then == "|"
        and following is not None
        and _base(_clean_word(following.words[0])) in _SHELLS
    )


def _is_assignment(word: str) -> bool:
    """True for ``NAME=value`` (a word from ``str.split``, so without newlines)."""
    return "=" in word and _ASSIGNMENT_WORD.match(word) is not None


@functools.lru_cache(maxsize=_REMEMBERED_WORDS)
def _clean_word(word: str) -> str:
    """``word`` without quoting tricks, one-character glob classes resolved (``adduse[r]``)."""
    return _ONE_CHAR_CLASS.sub(r"\1", _TRICK.sub("", word))


@functools.lru_cache(maxsize=_REMEMBERED_WORDS)
def _base(word: str) -> str:
    """A command word's name: without its directory, leading ``@`` or version suffix."""
    name = word.rsplit("/", 1)[-1].lstrip("@\\").lower()
    if name in _COMMANDS:
        return name
    versioned = _VERSIONED.fullmatch(name)
    return versioned.group(1) if versioned is not None else name


register(CommandInjection)
