"""``tagbase demo``: load a realistic made-up loyalty programme (see ``tagbase.web.demo``)."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tagbase.accounts.actors import Actor
from tagbase.web.demo import DemoError, delete_demo, load_demo

MAX_CUSTOMERS = 10_000_000


def _count(value: str) -> int:
    try:
        number = int(value.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 0 <= number <= MAX_CUSTOMERS:
        raise argparse.ArgumentTypeError(f"must be between 0 and {MAX_CUSTOMERS:,}")
    return number


def _mean(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not 0 <= number <= 100:
        raise argparse.ArgumentTypeError("must be between 0 and 100")
    return number


class Command(BaseCommand):
    help = (
        "Load demo data: customers with contacts, cards, receipts and events, and about twenty "
        "audiences with some history. Deterministic for a seed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--customers", type=_count, default=50_000, help="How many (default: 50000)."
        )
        parser.add_argument("--seed", type=int, default=42, help="Random seed (default: 42).")
        parser.add_argument(
            "--receipts-per-customer",
            type=_mean,
            default=6.0,
            help="Mean receipts per customer (default: 6).",
        )
        parser.add_argument(
            "--reset",
            action="store_true",
            help="Delete the demo customers and audiences first (other data is kept). "
            "With --customers 0, only delete.",
        )

    def handle(self, *args: object, **options: object) -> None:
        actor = Actor.system("demo")
        if options["reset"]:
            audiences, customers = delete_demo(actor=actor)
            self.stdout.write(f"Deleted {customers:,} demo customers and {audiences} audiences.")
        if not options["customers"]:
            return
        try:
            report = load_demo(
                customers=int(options["customers"]),  # type: ignore[call-overload]
                seed=int(options["seed"]),  # type: ignore[call-overload]
                receipts_per_customer=float(options["receipts_per_customer"]),  # type: ignore[arg-type]
                actor=actor,
            )
        except DemoError as exc:
            raise CommandError(str(exc)) from None
        t = report.timings
        self.stdout.write(
            f"Loaded {report.customers:,} customers, {report.cards:,} cards, "
            f"{report.receipts:,} receipts, {report.events:,} events, {report.audiences} "
            f"audiences ({report.operations} operations), {report.segments} segments and "
            f"{report.campaigns} campaigns "
            f"in {t['total']:.1f} s "
            f"(customers {t['customers']:.1f} s, stats {t['stats']:.1f} s, "
            f"audiences {t['audiences']:.1f} s)."
        )
