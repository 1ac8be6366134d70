"""Path parameters shared by the API's and the console's routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path

# Identifiers in paths: what our ids are made of (it_..., run_...), so anything else is a 400.
IdPath = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:-]+$")]
