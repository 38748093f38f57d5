"""The shell reading of the command injection check."""

from __future__ import annotations

import pytest

from apishield.checks.cmdi import analyse


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("; cat /etc/passwd", "chained command"),
        ("c3=t;c2=a;c1=c;$c1$c2$c3 /etc/hosts", "chained command"),
        ("'w'hoami", "obfuscated command"),
        ("{cat,/etc/hosts}", "brace-expanded command"),
        ("/???/??t", "path glob for /bin/cat"),
        ("a | sh", "pipe into a shell"),
        ("nohup who", "wrapped command"),
        ("bash -c id", "shell invocation"),
        ("f(){ f|f& };f", "fork bomb"),
        ("alias a=curl&a x", "command alias"),
    ],
)
def test_attacks_are_read_as_commands(text: str, kind: str) -> None:
    judged = analyse(text)
    assert judged is not None and judged.kind == kind and not judged.strict


@pytest.mark.parametrize(
    "text",
    [
        "having friends over; cat lovers welcome",
        "html | php | python",
        "query {\n id\n}",
        "/* a */ x",
        "file{1,2}.txt",
        "O'keefe's",
    ],
)
def test_prose_is_no_command(text: str) -> None:
    assert analyse(text) is None


def test_a_bare_command_line_is_strict() -> None:
    judged = analyse("ls -la /var/www")
    assert judged is not None and judged.strict
