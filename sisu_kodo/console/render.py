"""HTML answers: Jinja2 templates (autoescaped) with the layout's navigation, and the
session cookie of a visitor who just got one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from sisu_kodo.auth import Action
from sisu_kodo.console.access import CSRF_FIELD, Visitor

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


def age(moment: str | datetime | None, now: datetime | None = None) -> str:
    """'42 s', '7 min', '3 h', '2 d': how long ago `moment` was."""
    if moment is None:
        return "-"
    at = datetime.fromisoformat(moment) if isinstance(moment, str) else moment
    seconds = max(0, int(((now or datetime.now(UTC)) - at).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def clock(moment: str | None) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM:SS' (UTC), for tables."""
    if not moment:
        return "-"
    return datetime.fromisoformat(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


TEMPLATES.env.filters["age"] = age
TEMPLATES.env.filters["clock"] = clock
TEMPLATES.env.globals["Action"] = Action
TEMPLATES.env.globals["CSRF_FIELD"] = CSRF_FIELD


def html(
    request: Request,
    visitor: Visitor,
    template: str,
    *,
    status: int = 200,
    **context: Any,
) -> Response:
    """A page or fragment for `visitor`; `nav` (the layout's badge) only where given."""
    response = TEMPLATES.TemplateResponse(
        request, template, {"visitor": visitor, **context}, status_code=status
    )
    return with_session(response, request, visitor)


def redirect(request: Request, visitor: Visitor, url: str) -> Response:
    """303 See Other: after a form post, the browser GETs the result (no re-post on reload)."""
    return with_session(RedirectResponse(url, status_code=303), request, visitor)


def with_session(response: Response, request: Request, visitor: Visitor) -> Response:
    if visitor.new_session:
        visitor.codec.write(response, request, visitor.session)
    return response
