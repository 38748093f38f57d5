"""Deserialization check helpers: pickle opcode walking and bounded base64 decoding."""

from __future__ import annotations

import base64
import os
import pickle

import pytest

from apishield.checks.deserialization import (
    MAX_TOKEN,
    b64_alignments,
    b64_decode,
    b64_fragments,
    is_dangerous_callable,
    java_stream,
    judge_pickle,
    pickle_imports,
    token_at,
)


class _System:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("id",))


class _Point:
    def __init__(self) -> None:
        self.x = 1


@pytest.mark.parametrize("protocol", range(6))
def test_pickle_imports_names_the_callable_at_every_protocol(protocol: int) -> None:
    reading = pickle_imports(pickle.dumps(_System(), protocol=protocol))
    assert reading.imports == (f"{os.system.__module__} system",)
    assert reading.calls and reading.complete


def test_pickle_imports_of_data_only_pickle() -> None:
    reading = pickle_imports(pickle.dumps({"a": [1, 2.5, "x", b"y"]}, protocol=5))
    assert reading.imports == () and not reading.calls and reading.complete


def test_pickle_imports_follows_the_memo_for_stack_global() -> None:
    # the module string is memoised once and fetched again with BINGET before STACK_GLOBAL
    data = b"\x80\x04\x8c\x08builtins\x94\x8c\x04eval\x94\x93\x94h\x00\x8c\x04exec\x94\x93\x94."
    assert pickle_imports(data).imports == ("builtins eval", "builtins exec")


def test_pickle_imports_stops_at_garbage() -> None:
    reading = pickle_imports(b"\x80\x04\xff\xfe garbage")
    assert reading == (tuple(), False, False)


def test_judge_pickle_levels() -> None:
    dangerous = judge_pickle(pickle.dumps(_System(), protocol=4))
    assert dangerous is not None and dangerous.score == 95
    objects = judge_pickle(pickle.dumps(_Point(), protocol=4))
    assert objects is not None and objects.score < 75 and objects.evidence.endswith("_Point")
    assert judge_pickle(pickle.dumps([1, 2, 3])) is None
    assert judge_pickle(b"cos\nsin\ntan") is None  # text that merely parses as a GLOBAL


@pytest.mark.parametrize(
    ("imported", "dangerous"),
    [
        ("os system", True),
        ("posix popen", True),
        ("subprocess.Popen x", True),
        ("builtins eval", True),
        ("__builtin__ getattr", True),
        ("builtins set", False),
        ("copy_reg _reconstructor", False),
        ("datetime date", False),
        ("operator methodcaller", True),
        ("operator add", False),
    ],
)
def test_is_dangerous_callable(imported: str, dangerous: bool) -> None:
    assert is_dangerous_callable(imported) is dangerous


def test_b64_decode_standard_urlsafe_and_unpadded() -> None:
    data = bytes(range(256))
    assert b64_decode(base64.b64encode(data).decode()) == data
    assert b64_decode(base64.urlsafe_b64encode(data).decode().rstrip("=")) == data
    assert b64_decode("QUJDRA") == b"ABCD"
    assert b64_decode("QUJDR") == b"ABC"  # a dangling 5th char is dropped, not an error


def test_b64_decode_is_bounded() -> None:
    assert len(b64_decode("A" * (MAX_TOKEN * 4))) <= MAX_TOKEN


@pytest.mark.parametrize("offset", range(3))
def test_b64_alignments_recover_text_cut_from_any_position(offset: int) -> None:
    encoded = base64.b64encode(b"xy"[:offset] + b"invokertransformer").decode()
    cut = encoded[offset:]  # the characters that hold only prefix bits are gone
    assert any(b"invokertransformer" in data for data in b64_alignments(cut))


def test_b64_fragments_are_found_at_every_alignment() -> None:
    keyword = b"ProcessBuilder"
    fragments = list(b64_fragments(keyword))
    for prefix in (b"", b"a", b"ab"):
        encoded = base64.b64encode(prefix + keyword + b"!").decode()
        assert any(fragment in encoded for fragment in fragments)


def test_token_at_finds_the_whole_base64_run() -> None:
    text = "a=1; token=abc+/def_-==; x"
    assert token_at(text, text.index("def")) == "abc+/def_-"
    assert token_at("rO0AB", 0) == "rO0AB"


def test_java_stream_names_the_first_class() -> None:
    data = bytes.fromhex("aced0005737200116a6176612e7574696c2e486173684d6170")
    found = java_stream(b"junk" + data)
    assert found is not None and found.evidence == "java.util.HashMap"
    header = java_stream(bytes.fromhex("aced0005"))
    assert header is not None and "aced0005" in header.evidence
    assert java_stream(b"\xac\xed\x00\x06") is None
