"""Text and JSON types PostgreSQL can store: no NUL characters anywhere.

PostgreSQL `text` and `jsonb` reject U+0000; refusing it at the contract turns what would
be a database error (a 500) into a 400 naming the field.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator

_NUL = "\x00"


def _no_nul(value: str) -> str:
    if _NUL in value:
        raise ValueError("NUL characters are not allowed")
    return value


def _json_without_nul(value: Any) -> Any:
    if isinstance(value, str):
        _no_nul(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            _no_nul(key)
            _json_without_nul(item)
    elif isinstance(value, list):
        for item in value:
            _json_without_nul(item)
    return value


Text = Annotated[str, AfterValidator(_no_nul)]
JsonObject = Annotated[dict[str, Any], AfterValidator(_json_without_nul)]
