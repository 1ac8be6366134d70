"""The README's configuration table names every environment variable Settings reads."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices

from sisu_kodo.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme() -> None:
    missing = []
    for field in Settings.model_fields.values():
        names = (
            [str(choice) for choice in field.validation_alias.choices]
            if isinstance(field.validation_alias, AliasChoices)
            else [str(field.alias)]
        )
        missing += [name for name in names if f"`{name}`" not in README]
    assert not missing, f"undocumented in README.md: {missing}"
