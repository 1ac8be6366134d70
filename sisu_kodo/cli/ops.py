"""`sisu oracle` and `sisu doctor`: read the ledger and the fleet directly, as the manual's
triage does ("bypass logs; trust the ledger").

The checks (cli/diagnostics.py) read the databases through DBOS and SQLAlchemy; they are
imported by the two commands, so that the HTTP commands start without them.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sisu_kodo.cli.checks import print_checks
from sisu_kodo.cli.settings import settings_of


def oracle(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(help="The run to check.")],
    expect_success: Annotated[
        bool, typer.Option("--expect-success/--any-outcome", help="Require a succeeded run.")
    ] = True,
) -> None:
    """Run every SQL oracle of the manual for one run; exit 1 on any failure."""
    from sisu_kodo.cli.diagnostics import oracle_results

    results = oracle_results(settings_of(ctx), run_id=run_id, expect_success=expect_success)
    passed = print_checks(f"oracles for {run_id}", ((r.name, r.passed, r.detail) for r in results))
    raise typer.Exit(0 if passed else 1)


def doctor(ctx: typer.Context) -> None:
    """Check the database, DBOS, worker heartbeats and app versions, OpenCode and sandboxes."""
    from sisu_kodo.cli.diagnostics import doctor_checks

    raise typer.Exit(0 if print_checks("sisu doctor", doctor_checks(settings_of(ctx))) else 1)
