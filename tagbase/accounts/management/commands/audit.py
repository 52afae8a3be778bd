"""``tagbase audit list``: the audit log, newest first, with the UI's and the API's filters."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from tagbase.accounts import audit
from tagbase.accounts.models import AuditEntry


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {number}")
    return number


class Command(BaseCommand):
    help = "Read the audit log: who did what (docs/audit.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="verb", required=True, metavar="{list}")
        p = sub.add_parser("list", help="Audit entries, newest first.")
        p.add_argument("--since", metavar="DATE", default="", help="From this day or moment.")
        p.add_argument(
            "--until", metavar="DATE", default="", help="To this day (inclusive) or moment."
        )
        p.add_argument("--actor", default="", help="Exactly this actor (user, token:<name>…).")
        p.add_argument(
            "--action", default="", help="One action (segment.created) or a group (segment.)."
        )
        p.add_argument("--target-type", default="", help="user, token, audience, import…")
        p.add_argument("--target-id", type=_positive, default=None, help="The target's id.")
        p.add_argument("--limit", type=_positive, default=50, help="How many (default: 50).")
        p.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args: object, **options: object) -> None:
        try:
            where = audit.make_filter(
                actor=str(options["actor"]),
                action=str(options["action"]),
                target_type=str(options["target_type"]),
                target_id=options["target_id"],  # type: ignore[arg-type]
                since=str(options["since"]),
                until=str(options["until"]),
            )
        except audit.InvalidAuditFilter as exc:
            raise CommandError(f"--{exc.field.replace('_', '-')}: {exc.message}") from None
        entries = list(audit.find_entries(where)[: int(options["limit"])])  # type: ignore[call-overload]
        if options["json"]:
            data = [_as_dict(e) for e in entries]
            self.stdout.write(json.dumps(data, ensure_ascii=False, indent=2))
            return
        rows = [
            (
                e.pk,
                f"{timezone.localtime(e.at):%Y-%m-%d %H:%M:%S}",
                e.actor_label,
                e.action,
                f"{e.target_type}:{e.target_id}" if e.target_id else e.target_type,
                " ".join(f"{k}={v}" for k, v in e.summary.items()),
            )
            for e in entries
        ]
        self.stdout.write(_table(["id", "when", "actor", "action", "target", "summary"], rows))


def _as_dict(entry: AuditEntry) -> dict[str, object]:
    """The same keys as the API's entries."""
    return {
        "id": entry.pk,
        "at": entry.at.isoformat(),
        "actor_kind": entry.actor_kind,
        "actor": entry.actor_label,
        "actor_user_id": entry.actor_user_id,
        "actor_token_id": entry.actor_token_id,
        "action": entry.action,
        "target_type": entry.target_type,
        "target_id": entry.target_id,
        "summary": entry.summary,
    }


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    if not rows:
        return "(none)"
    cells = [[str(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    lines = [headers, ["-" * w for w in widths], *cells]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines
    )
