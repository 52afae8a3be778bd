"""The ``tagbase`` command: Django's manage.py plus Tagbase's own commands (see docs/cli.md).

Every Tagbase command is a Django management command, so ``tagbase <command> --help`` works for
each; run with no arguments, ``tagbase`` lists Tagbase's commands first, then Django's.
"""

from __future__ import annotations

import os
import sys

# (usage, what it does) — the commands an operator or a marketer reaches for; docs/cli.md
# documents each, and a test checks this list, the commands and the docs agree.
TAGBASE_COMMANDS: list[tuple[str, str]] = [
    ("serve [--host H] [--port P]", "run the web UI and a worker (demo data on first start)"),
    ("worker [--queue Q]", "run background tasks until stopped"),
    ("demo [--customers N] [--reset]", "load realistic demo data"),
    ("audience list|show|create|rename|delete", "work with target audiences"),
    ("audience members NAME", "export an audience's members as CSV"),
    ("audience export NAME --format F [-o F]", "members as CSV, or an ad platform's hashed list"),
    (
        "audience schedule-export|export-schedules",
        "exports to a folder on a schedule (+ unschedule-export)",
    ),
    ("audience add|remove NAME --id-type T FILE", "add or remove customers named in a file"),
    ("import FILE --id-type T --audience NAME", "import an audience file (full report)"),
    ("imports list|purge", "recent imports; delete stored files past retention"),
    ("segment list|show|create|preview|to-audience", "work with user segments"),
    ("sets combine|overlap|as-of|job", "union/intersection/difference; members on a date"),
    ("campaign list|show|activate|suspend|run-due", "work with campaigns; run what is due"),
    ("operation list|undo", "history of membership changes, and undo"),
    ("reconcile [--check]", "prove every audience's member count"),
    ("customers load FILE.csv", "load or update customers from a CSV file"),
    ("customers erase SC_ID [--yes]", "erase a customer's personal data everywhere"),
    ("receipts load|refresh-stats", "load receipts from a CSV file; recompute metrics"),
    ("createuser NAME [--role R]", "add a login for the web UI"),
    ("audit list [--since D] [--action X]", "the audit log: who did what, newest first"),
    ("flush", "Django's flush (empties every table, the audit log included)"),
]

_HELP_ARGS = ({"help"}, {"--help"}, {"-h"})


def tagbase_help() -> str:
    width = max(len(usage) for usage, _ in TAGBASE_COMMANDS)
    lines = ["Tagbase commands (tagbase <command> --help for options):", ""]
    lines += [f"  tagbase {usage.ljust(width)}  {what}" for usage, what in TAGBASE_COMMANDS]
    lines += ["", "Django's commands follow (tagbase is also manage.py)."]
    return "\n".join(lines) + "\n\n"


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tagbase.settings")
    from django.core.management import execute_from_command_line

    args = sys.argv[1:] if argv is None else argv
    if not args or set(args) in _HELP_ARGS:
        sys.stdout.write(tagbase_help())
    execute_from_command_line(["tagbase", *args])


if __name__ == "__main__":
    main()
