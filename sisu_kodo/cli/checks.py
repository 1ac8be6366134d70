"""Pass/fail tables shared by `sisu oracle`, `sisu doctor` and `sisu chaos`."""

from __future__ import annotations

from collections.abc import Iterable

from rich.table import Table

from sisu_kodo.cli.output import console


def print_checks(title: str, checks: Iterable[tuple[str, bool, str]]) -> bool:
    """Print a pass/fail table; True when every check passed."""
    table = Table(title=title, title_justify="left")
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    all_passed = True
    for name, passed, detail in checks:
        all_passed &= passed
        table.add_row(name, "[green]PASS[/green]" if passed else "[red]FAIL[/red]", detail)
    console.print(table)
    return all_passed
