"""main stays ruff-clean: the same checks as `make lint`, run with the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT

RUFF = Path(sys.executable).parent / "ruff"


def test_ruff_check_is_clean() -> None:
    result = subprocess.run([str(RUFF), "check", "."], cwd=PROJECT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = subprocess.run(
        [str(RUFF), "format", "--check", "bot", "tests"], cwd=PROJECT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
