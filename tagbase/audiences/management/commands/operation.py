"""``tagbase operation list|undo``: the history of membership changes, and undoing one."""

from __future__ import annotations

import argparse

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tagbase.accounts.management import cli_actor
from tagbase.audiences import services
from tagbase.audiences.management import (
    audience_named,
    operation_dict,
    operation_summary,
    table,
    to_json,
)
from tagbase.audiences.models import Operation


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {number}")
    return number


class Command(BaseCommand):
    help = "List membership operations (newest first) or undo one."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="{list,undo}")
        p = sub.add_parser("list", help="Operations, newest first.")
        p.add_argument("--audience", metavar="NAME", help="Only this audience's operations.")
        p.add_argument("--limit", type=_positive, default=20, help="How many (default: 20).")
        p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser("undo", help="Revert what an operation did that still stands.")
        p.add_argument("id", type=_positive, help="The operation's number.")
        p.add_argument("--json", action="store_true", help="Print the undo operation as JSON.")

    def handle(self, *args: object, **options: object) -> None:
        if options["action"] == "list":
            self._list(options)
        else:
            self._undo(options)

    def _list(self, options: dict[str, object]) -> None:
        ops = Operation.objects.order_by("-created_at", "-id")
        if options["audience"]:
            ops = ops.filter(audience=audience_named(str(options["audience"])))
        ops = ops[: int(options["limit"])]  # type: ignore[call-overload]
        if options["json"]:
            self.stdout.write(to_json([operation_dict(op) for op in ops]))
            return
        rows = [
            (
                op.pk,
                op.created_at,
                op.audience_name,
                op.kind,
                op.action,
                op.changed,
                op.status,
                op.actor_label,
            )
            for op in ops
        ]
        headers = ["id", "when", "audience", "kind", "action", "changed", "status", "actor"]
        self.stdout.write(table(headers, rows))

    def _undo(self, options: dict[str, object]) -> None:
        op = Operation.objects.filter(pk=int(options["id"])).first()  # type: ignore[call-overload]
        if op is None:
            raise CommandError(f"No operation #{options['id']} (see `tagbase operation list`).")
        try:
            undo = services.undo_operation(op, actor=cli_actor())
        except services.AudienceError as exc:
            raise CommandError(exc.message) from None
        if options["json"]:
            self.stdout.write(to_json(operation_dict(undo)))
        else:
            self.stdout.write(f"Undid operation #{op.pk}. " + operation_summary(undo))
