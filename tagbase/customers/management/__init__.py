"""What the customer data commands share: running a load and printing its report."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from tagbase.accounts.actors import Actor
from tagbase.accounts.management import cli_actor
from tagbase.customers.reports import FileRejected, LoadReport
from tagbase.lib.progress import Progress

# Errors printed in the human summary; --json lists up to the report's own cap.
SHOWN_ERRORS = 50

Loader = Callable[..., LoadReport]


def run_load(command: BaseCommand, loader: Loader, options: dict[str, Any]) -> None:
    """Load ``options['path']`` with ``loader`` and print the report (``--json`` for JSON).

    A file refused as a whole is a CommandError (non-zero exit); a file processed with row
    errors is a success that lists them."""
    path = Path(options["path"])
    actor: Actor = cli_actor()
    # The bar counts bytes read (the number of rows is unknown until the end); it draws only
    # when stderr is a terminal.
    with Progress(path.name, total=_size(path)) as bar:
        try:
            report = loader(
                path, actor=actor, progress=lambda rows, done, total: bar.advance(done - bar.done)
            )
        except FileRejected as exc:
            if options["as_json"]:
                command.stdout.write(json.dumps({"rejected": exc.as_dict()}, ensure_ascii=False))
            where = f" (line {exc.line})" if exc.line else ""
            message = f"{path.name}: file rejected [{exc.code}]{where}: {exc.message}"
            raise CommandError(message) from None
    if options["as_json"]:
        command.stdout.write(json.dumps(report.as_dict(), ensure_ascii=False, indent=2))
    else:
        command.stdout.write(summary(path.name, report))


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:  # missing or unreadable: the loader refuses it with a clear message
        return 0


def summary(name: str, report: LoadReport) -> str:
    lines = [
        f"{name}: {report.rows:,} rows read, {report.created:,} created, "
        f"{report.updated:,} updated, {report.failed:,} failed."
    ]
    for error in report.errors[:SHOWN_ERRORS]:
        lines.append(f"  line {error.line}, {error.field}: {error.message} [{error.code}]")
    hidden = report.failed - len({e.line for e in report.errors[:SHOWN_ERRORS]})
    if hidden > 0:
        lines.append(f"  … and {hidden:,} more failed rows (use --json to list up to 1,000).")
    return "\n".join(lines)


def add_load_parser(subparsers: Any, what: str, columns: str) -> None:
    load = subparsers.add_parser(
        "load",
        help=f"Load {what} from a CSV file (UTF-8, header required; delimiter , ; or TAB).",
        description=f"Columns: {columns}.",
    )
    load.add_argument("path", help="The CSV file.")
    load.add_argument(
        "--json", dest="as_json", action="store_true", help="Print the report as JSON."
    )
