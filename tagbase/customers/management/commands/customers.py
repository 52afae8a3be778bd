"""``tagbase customers load FILE.csv [--json]``: create or update customers from a CSV file."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from tagbase.customers.management import add_load_parser, run_load
from tagbase.customers.rows import CUSTOMER_COLUMNS
from tagbase.customers.services import load_customers_csv


class Command(BaseCommand):
    help = "Customer data: `load` creates or updates customers from a CSV file."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add_load_parser(sub, "customers", ", ".join(CUSTOMER_COLUMNS) + ", attr.<name>")

    def handle(self, *args: object, **options: Any) -> None:
        run_load(self, load_customers_csv, options)
