"""`sisu webhooks`: signed webhook subscriptions and their deliveries, through the API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.table import Table

from sisu_kodo.cli.output import console, err_console
from sisu_kodo.cli.settings import settings_of
from sisu_kodo.client import SisuClient
from sisu_kodo.contracts.webhooks import WebhookCreate, WebhookEvent
from sisu_kodo.errors import AppError

app = typer.Typer(
    help="Signed webhooks (Standard Webhooks) per tenant, via the API.", no_args_is_help=True
)
BaseOption = Annotated[
    str | None, typer.Option("--base", help="API base URL (default http://SISU_HOST:PORT).")
]


@contextmanager
def _client(ctx: typer.Context, base: str | None) -> Iterator[SisuClient]:
    settings = settings_of(ctx)
    url = base or f"http://{settings.topology.host}:{settings.topology.port}"
    try:
        with SisuClient(url, api_key=settings.api.api_key) as client:
            yield client
    except AppError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from exc


@app.command("add")
def add(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="Where to POST the signed events.")],
    event: Annotated[
        list[WebhookEvent] | None,
        typer.Option("--event", help="An event to subscribe to; repeatable (default: all)."),
    ] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Needed when the key holds several.")
    ] = None,
    base: BaseOption = None,
) -> None:
    """Subscribe a URL; prints the signing secret once."""
    try:
        body = WebhookCreate(url=url, events=event or list(WebhookEvent), tenant=tenant)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        err_console.print(f"[red]error:[/red] {problems}")
        raise typer.Exit(1) from exc
    with _client(ctx, base) as client:
        created = client.add_webhook(body)
    err_console.print(
        f"webhook {created.id} for tenant {created.tenant}: {', '.join(created.events)};"
        " signing secret shown once, store it now:"
    )
    console.print(created.secret, highlight=False, soft_wrap=True)


@app.command("ls")
def list_webhooks(ctx: typer.Context, base: BaseOption = None) -> None:
    """The subscriptions of the key's tenants, without secrets."""
    with _client(ctx, base) as client:
        hooks = client.webhooks().webhooks
    table = Table("id", "tenant", "url", "events", "created by", "created")
    for hook in hooks:
        table.add_row(
            hook.id, hook.tenant, hook.url, ",".join(hook.events), hook.createdBy, hook.createdAt
        )
    console.print(table)


@app.command("rm")
def remove(
    ctx: typer.Context,
    webhook_id: Annotated[str, typer.Argument(help="The subscription's id.")],
    base: BaseOption = None,
) -> None:
    """Delete a subscription; its pending deliveries give up."""
    with _client(ctx, base) as client:
        hook = client.delete_webhook(webhook_id)
    console.print(f"deleted webhook {hook.id} ({hook.url})")


@app.command("deliveries")
def deliveries(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run whose notifications to show.")],
    base: BaseOption = None,
) -> None:
    """Every delivery attempt of a run's webhooks: status code, latency, error."""
    with _client(ctx, base) as client:
        attempts = client.deliveries(run_id).deliveries
    table = Table("webhook-id", "event", "attempt", "status", "ms", "error", "at", "message")
    for item in attempts:
        table.add_row(
            item.webhookId,
            item.eventType,
            str(item.attempt),
            str(item.statusCode or ""),
            str(item.latencyMs or ""),
            item.error or "",
            item.attemptedAt,
            item.messageStatus,
        )
    console.print(table)
