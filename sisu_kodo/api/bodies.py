"""Strict JSON for request bodies: what PostgreSQL, the workflows and the planners can hold.

Python's `json` reads `NaN` and `Infinity`, turns `1e400` into infinity, keeps lone UTF-16
surrogates ("\\ud800") and nests until the interpreter's recursion limit. PostgreSQL's
jsonb refuses non-finite numbers, UTF-8 cannot carry lone surrogates, and deep nesting
outgrows the recursion limits further down (serializers, DBOS inputs), so each used to
become a 500 or a run stuck `queued`. Bodies are checked here once, before FastAPI parses
them, and refused with a 400 `validation_error` naming the place.
"""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from sisu_kodo.errors import InvalidRequestError

M = TypeVar("M", bound=BaseModel)

MAX_JSON_DEPTH = 32
# bigint, the widest integer column, is also what every JSON peer reads exactly enough.
MIN_JSON_INT = -(2**63)
MAX_JSON_INT = 2**63 - 1
# The longest literal that can lie in that range: anything longer is refused unread, so
# int() never has to parse Python's 4,300-digit maximum.
_MAX_INT_DIGITS = len(str(MAX_JSON_INT))
_PATH_PART_CHARS = 40


class _Refused(ValueError):
    """A literal the JSON scanner met that strict JSON does not allow."""


def check_json_body(raw: bytes) -> None:
    """Refuse `raw` unless it is strict JSON within the limits above.

    Raises:
        InvalidRequestError: not UTF-8, malformed, NaN/Infinity, a number out of range,
            a lone surrogate, or nested deeper than MAX_JSON_DEPTH.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid((), f"the body is not UTF-8 (byte {exc.start})") from exc
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except _Refused as exc:
        raise _invalid((), str(exc)) from exc
    except RecursionError as exc:
        raise _invalid((), _too_deep()) from exc
    except json.JSONDecodeError as exc:
        message = f"malformed JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise _invalid((), message) from exc
    _check_tree(value)


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _finite_float(literal: str) -> float:
    number = float(literal)
    if number in (float("inf"), float("-inf")):
        raise _Refused(f"the number {_shorten(literal)} is out of range (not a finite double)")
    return number


def _bounded_int(literal: str) -> int:
    digits = literal.removeprefix("-")
    if len(digits) <= _MAX_INT_DIGITS:
        number = int(literal)
        if MIN_JSON_INT <= number <= MAX_JSON_INT:
            return number
    raise _Refused(
        f"the integer {_shorten(literal)} is out of range"
        f" ({MIN_JSON_INT} to {MAX_JSON_INT}, PostgreSQL's bigint)"
    )


def _check_tree(value: Any) -> None:
    """Walk the parsed body without recursion: depth, and strings UTF-8 can encode."""
    stack: list[tuple[Any, tuple[Any, ...], int]] = [(value, (), 1)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, str):
            _check_text(node, path, "a string")
            continue
        if not isinstance(node, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            raise _invalid(path, _too_deep())
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, item in items:
            if isinstance(key, str):
                _check_text(key, (*path, key), "a key")
            stack.append((item, (*path, key), depth + 1))


def _check_text(text: str, path: tuple[Any, ...], what: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _invalid(
            path, f"{what} holds a lone UTF-16 surrogate (character {exc.start}), not text"
        ) from exc


def _too_deep() -> str:
    return f"JSON nests deeper than {MAX_JSON_DEPTH} levels (the nesting depth cap)"


def _invalid(path: tuple[Any, ...], message: str) -> InvalidRequestError:
    where = ".".join(_printable(part) for part in path) or "body"
    return InvalidRequestError(
        f"invalid request: {where}: {message}", [{"path": where, "message": message}]
    )


def _printable(part: Any) -> str:
    """A path part safe to echo: surrogates escaped (the error body is UTF-8), kept short."""
    text = str(part).encode("utf-8", "backslashreplace").decode("utf-8")
    return _shorten(text, _PATH_PART_CHARS)


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}..."


def validated(model: type[M], data: Any, *, at: str, what: str) -> M:
    """`data` as `model`, or a 400 `validation_error` listing field paths under `at`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"path": ".".join([at, *map(str, e["loc"])]), "message": e["msg"]} for e in exc.errors()
        ]
        raise InvalidRequestError(what, problems) from exc
