"""The package stays ruff- and mypy-clean: checked on every test run, not by memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )


def test_ruff_lint_and_format() -> None:
    lint = _run("ruff", "check", "sisu_kodo", "tests")
    assert lint.returncode == 0, lint.stdout
    formatting = _run("ruff", "format", "--check", "sisu_kodo", "tests")
    assert formatting.returncode == 0, formatting.stdout


def test_mypy_strict_on_the_package() -> None:
    checked = _run("mypy")
    assert checked.returncode == 0, checked.stdout
