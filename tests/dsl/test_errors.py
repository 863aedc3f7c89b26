"""Error goldens: bad input -> the exact diagnostic text a person sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubeforge.compiler.lower import load_program
from kubeforge.dsl.diagnostics import DiagnosticError
from tests.conftest import assert_golden

ERRORS = Path(__file__).parent / "errors"
CASES = sorted(p.name for p in ERRORS.glob("*.kf") if p.name != "import-cycle-b.kf")


@pytest.mark.parametrize("name", CASES)
def test_error_golden(name, monkeypatch):
    monkeypatch.chdir(ERRORS)
    with pytest.raises(DiagnosticError) as info:
        load_program(name)
    assert_golden(ERRORS / name.replace(".kf", ".txt"), info.value.render() + "\n")
