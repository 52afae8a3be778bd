"""``tagbase reconcile [--check] [--json]``: prove (and fix) every audience's member count."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tagbase.audiences import services
from tagbase.audiences.management import table, to_json


class Command(BaseCommand):
    help = (
        "Recompute every audience's member count from its membership rows and fix the ones "
        "that drifted. With --check nothing is changed and the exit code is 1 when any drifted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check", action="store_true", help="Report drift only; exit 1 when there is any."
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: object, **options: object) -> None:
        check = bool(options["check"])
        drifts = services.reconcile_member_counts(fix=not check)
        if options["json"]:
            self.stdout.write(
                to_json(
                    {
                        "fixed": not check and bool(drifts),
                        "drift": [
                            {
                                "id": d.audience_id,
                                "name": d.name,
                                "stored": d.stored,
                                "actual": d.actual,
                            }
                            for d in drifts
                        ],
                    }
                )
            )
        elif not drifts:
            self.stdout.write("Every audience's member count is exact.")
        else:
            rows = [(d.audience_id, d.name, d.stored, d.actual) for d in drifts]
            self.stdout.write(table(["id", "audience", "stored", "actual"], rows))
            verb = "drifted" if check else "drifted and were fixed"
            self.stdout.write(f"{len(drifts)} audience count(s) {verb}.")
        if check and drifts:
            raise CommandError(f"{len(drifts)} audience count(s) drifted (run without --check).")
