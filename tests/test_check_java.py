"""Java check helpers: the reading of Java names, uses and base64-encoded keywords."""

from __future__ import annotations

import pytest

from apishield.checks.java import BALANCED, analyse


@pytest.mark.parametrize(
    ("text", "evidence"),
    [
        ("java.lang.Runtime", "java.lang.Runtime"),
        ("java . lang . Runtime . getRuntime ( )", "java . lang . Runtime . getRuntime"),
        ("runtime.forclosure", "runtime.forclosure"),
        ("ProcessBuilder.evil.clonetransformer", "ProcessBuilder.evil.clonetransformer"),
        ("javax.naming.InitialContext", "javax.naming.InitialContext"),
        ("InvokerTransformer", "InvokerTransformer"),
        ("new java.io.BufferedReader(x)", "java.io.BufferedReader"),
        ("@java.lang.System@getenv()", "java.lang.System"),
        ("T(java.lang.reflect.Method)", "java.lang.reflect.Method"),
    ],
)
def test_block_worthy(text: str, evidence: str) -> None:
    found = analyse(text)
    assert found is not None and found.score >= BALANCED
    assert found.evidence == evidence


@pytest.mark.parametrize(
    "text",
    ["java.lang.reflect.Method", "java.io.InputStream", "java.lang.System", "forclosure"],
)
def test_mentions_are_strict_only(text: str) -> None:
    found = analyse(text)
    assert found is not None and found.score < BALANCED


@pytest.mark.parametrize(
    "text",
    [
        "java.lang.String",
        "java.util.HashMap",
        "java.runtime.version",
        "Java Runtime Environment",
        "at java.lang.reflect.Method.invoke(Method.java:498)",
        "at java.lang.ProcessBuilder.start(Unknown Source)",
        "java.lang.reflect.InvocationTargetException",
        "runtime.9e0f92e638d3973b455f.js",
        "com.example.app.MainActivity",
    ],
)
def test_not_evidence(text: str) -> None:
    assert analyse(text) is None


def test_typed_names_count_as_used() -> None:
    typed = analyse("java.lang.AutoCloseable", typed=True)
    assert typed is not None and typed.score >= BALANCED
    assert analyse("java.lang.AutoCloseable") is None
    assert analyse("java.util.ArrayList", typed=True) is None
