"""The CLI's settings, built once by the root callback and kept on the Typer context."""

from __future__ import annotations

import typer

from sisu_kodo.config import Settings


def settings_of(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    settings: Settings = root.obj
    return settings
