"""``tagbase flush``: Django's flush, which also empties the append-only audit log.

The audit table refuses DELETE through a trigger (docs/audit.md). Django's flush — which
tests run between transactional cases, and an operator may run to empty a database — deletes
every table's rows: a TRUNCATE on PostgreSQL, which row triggers do not see, but a plain
DELETE on SQLite. This command is Django's own with the SQLite trigger unlocked for its
duration, so that emptying the whole database behaves the same on both engines, while any
other DELETE of audit entries stays refused.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import flush

from tagbase.accounts.audit import unlocked_for_flush


class Command(flush.Command):
    help = flush.Command.help + " Tagbase: the audit log is emptied too."

    def handle(self, **options: Any) -> None:
        with unlocked_for_flush():
            super().handle(**options)
