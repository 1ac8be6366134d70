"""The package and the tests stay ruff- and mypy-clean: scripts/check, on every full run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# It spawns ruff and mypy (tens of seconds): the full tier's, not the quick tier's.
pytestmark = pytest.mark.integration


def test_scripts_check_passes() -> None:
    checked = subprocess.run(
        [ROOT / "scripts" / "check"],
        cwd=ROOT,
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
