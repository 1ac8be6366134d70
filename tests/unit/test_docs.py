"""The README's configuration table names every environment variable Settings reads, and
the docs stand alone: every Markdown link points at a file inside the repository."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices, BaseModel

from sisu_kodo.config import Settings, SettingsGroup

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme() -> None:
    missing = [name for name in _variables(Settings) if f"`{name}`" not in README]
    assert not missing, f"undocumented in README.md: {missing}"


# Fenced blocks and inline code hold commands and SQL, not links.
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.DOTALL)
_LINK = re.compile(r"\]\(([^)\s]+)[^)]*\)|^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)


def _link_targets(markdown: str) -> list[str]:
    prose = _CODE.sub("", markdown)
    return [inline or reference for inline, reference in _LINK.findall(prose)]


def _broken(page: Path, target: str) -> str | None:
    """Why `target`, linked from `page`, is not a file of this repository (None if it is)."""
    path = target.split("#", 1)[0]
    if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("/"):
        return "not a relative link"
    resolved = (page.parent / path).resolve() if path else page
    if not resolved.is_relative_to(ROOT):
        return "outside the repository"
    return None if resolved.is_file() else "no such file"


def test_every_markdown_link_resolves_inside_the_repository() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    links = [(page, target) for page in pages for target in _link_targets(page.read_text())]
    assert len(links) >= 10, f"the link scan found too few links to prove anything: {links}"
    broken = [
        f"{page.relative_to(ROOT)}: {target} ({why})"
        for page, target in links
        if (why := _broken(page, target))
    ]
    assert not broken, "\n".join(broken)


def _variables(group: type[BaseModel]) -> list[str]:
    """Every environment variable of a settings group, walking into its subgroups."""
    names: list[str] = []
    for field in group.model_fields.values():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, SettingsGroup):
            names += _variables(kind)
        elif isinstance(field.validation_alias, AliasChoices):
            names += [str(choice) for choice in field.validation_alias.choices]
        else:
            names.append(str(field.alias))
    return names


def test_the_walk_finds_variables_of_nested_groups() -> None:
    names = _variables(Settings)
    assert {"OC_MODE", "SBX_MODE", "SBX_LOCAL_UID", "E2B_API_KEY", "PORT"} <= set(names)
    assert len(names) == len(set(names))
