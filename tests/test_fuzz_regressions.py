"""Every input the fuzzer ever crashed a parser with, replayed through the same target.

``bench/fuzz.py`` saves each crashing input under ``tests/fuzz_regressions/<parser>/``; the
target (``bench/fuzz_targets.py``) raises on the bug, so a regression fails here. The seed
corpus is replayed too: real switch traffic must always pass its own parser's checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fuzz_targets import TARGETS

HERE = Path(__file__).resolve().parent


def _cases(folder: str) -> list:  # type: ignore[type-arg]
    root = HERE / folder
    if not root.is_dir():
        return []
    return [pytest.param(d.name, f, id=f"{d.name}/{f.name}")
            for d in sorted(root.iterdir()) if d.is_dir()
            for f in sorted(d.iterdir()) if f.is_file() and f.suffix != ".md"]


@pytest.mark.parametrize("parser,path", _cases("fuzz_regressions"))
def test_fuzz_regression(parser: str, path: Path) -> None:
    TARGETS[parser](path.read_bytes())


@pytest.mark.parametrize("parser,path", _cases("fuzz_corpus"))
def test_fuzz_seed(parser: str, path: Path) -> None:
    TARGETS[parser](path.read_bytes())


def test_every_saved_input_has_a_target() -> None:
    for folder in ("fuzz_regressions", "fuzz_corpus"):
        root = HERE / folder
        for d in root.iterdir() if root.is_dir() else []:
            if d.is_dir():
                assert d.name in TARGETS, f"{folder}/{d.name} names no fuzz target"


def test_targets_catch_what_they_claim() -> None:
    """The harness itself can fail: a broken property is an AssertionError."""
    from bench.fuzz_targets import _check_import
    from hotdesk.admin.importers import ImportRecord, ParseResult

    _check_import(ParseResult(records=[ImportRecord(extension="101", pin="1234")]))
    with pytest.raises(AssertionError):
        _check_import(ParseResult(records=[ImportRecord(extension="10x")]))
