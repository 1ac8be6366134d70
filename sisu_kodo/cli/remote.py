"""Commands that go through the HTTP API: the client they share, their exit codes, --json.

Every error the API answers becomes one line on stderr and a fixed exit code, so scripts
can tell "not found" from "not allowed" from "the API is down" without parsing text.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum
from typing import Annotated

import httpx
import typer
from pydantic import BaseModel, ValidationError
from rich.markup import escape

from sisu_kodo.cli.output import err_console
from sisu_kodo.cli.settings import api_url, settings_of
from sisu_kodo.client import SisuClient
from sisu_kodo.deadlines import WaitTimeout
from sisu_kodo.errors import AppError


class Exit(IntEnum):
    """The exit codes of the API commands (docs/cli.md)."""

    OK = 0
    RUN_NOT_SUCCEEDED = 1  # the run (or task) waited for ended otherwise
    USAGE = 2  # a bad option or setting (Typer's and config's own code)
    DENIED = 3  # 401 or 403: no valid key, or the key may not do it
    NOT_FOUND = 4  # 404: no such run, task or artifact (or another tenant's)
    REFUSED = 5  # 400 or 409: invalid input, or the run's status does not allow it
    UNAVAILABLE = 6  # the API is unreachable or answered 5xx
    TIMED_OUT = 7  # --wait or --follow gave up at --timeout


JsonOption = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]
TimeoutOption = Annotated[
    float, typer.Option(help="Seconds to wait (with --wait or --follow).", min=0)
]


def _code_for(error: AppError) -> Exit:
    status = error.http_status
    if status in (401, 403):
        return Exit.DENIED
    if status == 404:
        return Exit.NOT_FOUND
    if 400 <= status < 500:
        return Exit.REFUSED
    return Exit.UNAVAILABLE


@contextmanager
def remote(ctx: typer.Context) -> Iterator[SisuClient]:
    """A client on the API of the CLI's settings (SISU_HOST, PORT, SISU_API_KEY); API
    errors end the command with their exit code."""
    settings = settings_of(ctx)
    base = api_url(settings)
    try:
        with SisuClient(base, api_key=settings.api.api_key) as client:
            yield client
    except AppError as error:
        err_console.print(f"[red]error:[/red] {escape(error.code)}: {escape(error.message)}")
        raise typer.Exit(_code_for(error)) from error
    except ValidationError as invalid:  # refused before it is sent, as the API would
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors()
        )
        err_console.print(f"[red]error:[/red] validation_error: {escape(problems)}")
        raise typer.Exit(Exit.REFUSED) from invalid
    except WaitTimeout as timeout:
        err_console.print(f"[red]timed out:[/red] {escape(str(timeout))}")
        raise typer.Exit(Exit.TIMED_OUT) from timeout
    except httpx.HTTPError as unreachable:
        err_console.print(f"[red]error:[/red] the API at {base} is unreachable: {unreachable}")
        raise typer.Exit(Exit.UNAVAILABLE) from unreachable


def emit_json(model: BaseModel) -> None:
    """The answer as JSON on stdout, unstyled (Rich would wrap and colour it)."""
    typer.echo(model.model_dump_json(indent=2))
