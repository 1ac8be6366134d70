"""The console ships in the wheel: every template and static file is package data, and
htmx is vendored (no page loads a script or stylesheet from elsewhere)."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "sisu_kodo" / "console"


def test_every_template_and_static_file_is_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["sisu_kodo"]
    files = [
        path.relative_to(ROOT / "sisu_kodo").as_posix()
        for folder in ("templates", "static")
        for path in (CONSOLE / folder).iterdir()
    ]
    assert len(files) > 10
    missing = [name for name in files if not any(fnmatch(name, p) for p in patterns)]
    assert not missing, f"not in the wheel: {missing}"


def test_pages_load_only_their_own_scripts_and_styles() -> None:
    sources = re.findall(
        r'(?:src|href)="([^"{]+)"', (CONSOLE / "templates" / "base.html").read_text()
    )
    assets = [source for source in sources if source.endswith((".js", ".css"))]
    assert assets and all(source.startswith("/console/static/") for source in assets)
    for asset in assets:
        assert (CONSOLE / "static" / asset.removeprefix("/console/static/")).is_file()
