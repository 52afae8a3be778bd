"""``tagbase receipts load FILE.csv [--json]`` and ``tagbase receipts refresh-stats``."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tagbase.customers.management import add_load_parser, run_load
from tagbase.customers.rows import RECEIPT_COLUMNS
from tagbase.customers.services import load_receipts_csv, refresh_customer_stats


class Command(BaseCommand):
    help = (
        "Receipts: `load` creates or updates receipts from a CSV file and refreshes the "
        "customers' receipt metrics; `refresh-stats` recomputes every customer's metrics."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add_load_parser(sub, "receipts", ", ".join(RECEIPT_COLUMNS))
        sub.add_parser(
            "refresh-stats",
            help="Recompute the receipt metrics of every customer from the receipts.",
        )

    def handle(self, *args: object, **options: Any) -> None:
        if options["action"] == "load":
            run_load(self, load_receipts_csv, options)
            return
        written = refresh_customer_stats()
        noun = "customer" if written == 1 else "customers"
        self.stdout.write(f"Receipt metrics recomputed for {written:,} {noun}.")
