"""The CLI's settings, built once by the root callback and kept on the Typer context."""

from __future__ import annotations

import typer

from sisu_kodo.config import Settings


def settings_of(ctx: typer.Context) -> Settings:
    root = ctx.find_root()
    settings: Settings = root.obj
    return settings


def api_url(settings: Settings) -> str:
    """The API these settings describe (SISU_HOST and PORT): where CLI commands go."""
    return f"http://{settings.topology.host}:{settings.topology.port}"
