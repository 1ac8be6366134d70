"""The README's configuration table names every environment variable Settings reads."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, BaseModel

from sisu_kodo.config import Settings, SettingsGroup

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme() -> None:
    missing = [name for name in _variables(Settings) if f"`{name}`" not in README]
    assert not missing, f"undocumented in README.md: {missing}"


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
