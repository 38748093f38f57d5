"""bench/detection/run.py: the loader of CRS tests judged not to be attacks."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUN_PY = Path(__file__).resolve().parents[1] / "bench" / "detection" / "run.py"
IDS = ["crs:941100-1", "crs:941100-2", "crs:941390-10", "crs:913100-4", "sqli:1"]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("detection_run", RUN_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def _write(directory: Path, name: str, text: str) -> None:
    (directory / name).write_text(text, encoding="utf-8")


def test_tests_and_whole_rules_are_loaded(bench: ModuleType, tmp_path: Path) -> None:
    _write(tmp_path, "xss.yaml", '- {test: "crs:941390-10", reason: "prose"}\n')
    _write(tmp_path, "scanner.yaml", '- {rule: 941100, reason: " a rule "}\n')
    _write(tmp_path, "empty.yaml", "")
    judged = bench.load_judgements(tmp_path, IDS)
    assert sorted(judged) == ["crs:941100-1", "crs:941100-2", "crs:941390-10"]
    assert judged["crs:941100-2"].reason == "a rule"
    assert judged["crs:941100-2"].where == "scanner.yaml entry 1"
    assert judged["crs:941390-10"].rule == "941390"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('- {test: "crs:941390-10", reason: "x", note: "y"}\n', "unknown key 'note'"),
        ('- {test: "crs:941390-99", reason: "x"}\n', "'crs:941390-99' is not in the corpus"),
        ('- {test: "941390-10", reason: "x"}\n', "must look like"),
        ('- {rule: 942100, reason: "x"}\n', "rule 942100 has no test in the corpus"),
        ('- {test: "crs:941390-10"}\n', "`reason` must be a non-empty string"),
        ('- {test: "crs:941390-10", reason: " "}\n', "`reason` must be a non-empty string"),
        ('- {test: "crs:941390-10", rule: 941390, reason: "x"}\n', "exactly one of"),
        ('- {reason: "x"}\n', "exactly one of"),
        ("- crs:941390-10\n", "must be a mapping"),
        ("test: crs:941390-10\n", "must be a YAML list"),
        ("- [unclosed\n", "not valid YAML"),
        (
            '- {test: "crs:941390-10", reason: "x"}\n- {test: "crs:941390-10", reason: "y"}\n',
            "entry 2: duplicate: crs:941390-10 is already listed in a.yaml entry 1",
        ),
        (
            '- {test: "crs:941100-2", reason: "x"}\n- {rule: 941100, reason: "y"}\n',
            "entry 2: duplicate: crs:941100-2",
        ),
    ],
)
def test_invalid_entries_are_named(
    bench: ModuleType, tmp_path: Path, text: str, problem: str
) -> None:
    _write(tmp_path, "a.yaml", text)
    with pytest.raises(bench.JudgementError, match=r"a\.yaml") as raised:
        bench.load_judgements(tmp_path, IDS)
    assert problem in str(raised.value)


def test_duplicates_across_files_and_every_problem_reported(
    bench: ModuleType, tmp_path: Path
) -> None:
    _write(tmp_path, "a.yaml", '- {test: "crs:913100-4", reason: "x"}\n')
    _write(tmp_path, "b.yaml", '- {rule: 913100, reason: "y"}\n- {test: "crs:1-1", reason: "z"}\n')
    with pytest.raises(bench.JudgementError) as raised:
        bench.load_judgements(tmp_path, IDS)
    lines = str(raised.value).splitlines()
    assert lines == [
        "b.yaml entry 1: duplicate: crs:913100-4 is already listed in a.yaml entry 1",
        "b.yaml entry 2: `test` must look like \"crs:944130-77\", got 'crs:1-1'",
    ]


def test_project_files_validate_against_the_corpus(bench: ModuleType) -> None:
    """The committed crs-not-attacks files are valid (when the shared corpus is here)."""
    path = bench.CORPORA_DIR / f"{bench.CRS_CORPUS}.jsonl"
    if not path.is_file():
        pytest.skip(f"no {path}")
    judged = bench.load_judgements(bench.NOT_ATTACKS_DIR, bench.corpus_ids(path))
    assert all(j.reason for j in judged.values())
