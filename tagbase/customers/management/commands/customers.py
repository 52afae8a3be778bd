"""``tagbase customers load FILE.csv [--json]``: create or update customers from a CSV file.
``tagbase customers erase SC_ID [--yes] [--json]``: erase a customer's personal data."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tagbase.accounts.management import cli_actor
from tagbase.customers.erasure import ErasureError
from tagbase.customers.management import add_load_parser, run_load
from tagbase.customers.models import Customer
from tagbase.customers.rows import CUSTOMER_COLUMNS
from tagbase.customers.services import erase_customer, load_customers_csv


class Command(BaseCommand):
    help = (
        "Customer data: `load` creates or updates customers from a CSV file; `erase` erases "
        "one customer's personal data everywhere (docs/privacy.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        add_load_parser(sub, "customers", ", ".join(CUSTOMER_COLUMNS) + ", attr.<name>")
        erase = sub.add_parser(
            "erase",
            help="Erase a customer's personal data everywhere (cannot be undone).",
            description="Removes the customer from every audience (recorded), from stored "
            "import files, staged rows and rejected-rows reports, from campaign entries and "
            "outbox messages, and deletes the customer; the erasure is recorded without any "
            "personal data. Erasing an erased customer changes nothing.",
        )
        erase.add_argument("sc_id", type=int, help="The customer's Tagbase ID.")
        erase.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        erase.add_argument(
            "--json", dest="as_json", action="store_true", help="Print the erasure record as JSON."
        )

    def handle(self, *args: object, **options: Any) -> None:
        if options["action"] == "erase":
            self._erase(options)
        else:
            run_load(self, load_customers_csv, options)

    def _erase(self, options: dict[str, Any]) -> None:
        sc_id = options["sc_id"]
        if not options["yes"] and Customer.objects.filter(pk=sc_id).exists():
            _confirm(
                f"Erase the personal data of customer {sc_id} everywhere? Only the ID stays in "
                "the history. This cannot be undone. [y/N] "
            )
        try:
            result = erase_customer(sc_id, actor=cli_actor())
        except ErasureError as exc:
            raise CommandError(f"{exc.message} [{exc.code}]") from None
        record = result.erasure
        if options["as_json"]:
            body = {
                "sc_id": record.sc_id,
                "erased_at": record.erased_at.isoformat(),
                "erased_by": record.actor_label,
                "already_erased": result.already_erased,
                "counts": record.counts,
            }
            self.stdout.write(json.dumps(body, indent=2))
            return
        if result.already_erased:
            self.stdout.write(
                f"Customer {sc_id} was already erased on {record.erased_at:%Y-%m-%d %H:%M} "
                f"by {record.actor_label}; nothing to do."
            )
            return
        self.stdout.write(f"Customer {sc_id}: personal data erased. {summary(record.counts)}")


def summary(counts: dict[str, dict[str, int]]) -> str:
    """The counts of an erasure in one sentence."""
    audiences = counts.get("audiences", {})
    imports = counts.get("imports", {})
    campaigns = counts.get("campaigns", {})
    own = counts.get("customers", {})
    return (
        f"Removed from {audiences.get('memberships_removed', 0):,} audience(s); "
        f"{imports.get('lines_emptied', 0):,} line(s) emptied in "
        f"{imports.get('imports', 0):,} import(s); "
        f"{campaigns.get('messages_masked', 0):,} message(s) masked; "
        f"{own.get('cards_deleted', 0):,} card(s), {own.get('receipts_deleted', 0):,} "
        f"receipt(s) and {own.get('events_deleted', 0):,} event(s) deleted."
    )


def _confirm(prompt: str) -> None:
    if not sys.stdin.isatty():
        raise CommandError("Refusing to erase without --yes: stdin is not a terminal.")
    if input(prompt).strip().lower() not in {"y", "yes"}:
        raise CommandError("Not erased.")
