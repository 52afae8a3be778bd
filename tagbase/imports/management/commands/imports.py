"""`tagbase imports list|purge`: recent import jobs, and deleting files past retention."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandParser

from tagbase.imports import queries, services


class Command(BaseCommand):
    help = "List recent imports, or purge stored files older than the retention."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        listing = sub.add_parser("list", help="Recent import jobs")
        listing.add_argument("--limit", type=int, default=20)
        listing.add_argument("--json", action="store_true")
        purge = sub.add_parser(
            "purge", help="Delete uploads and reports older than TAGBASE_IMPORT_RETENTION_DAYS"
        )
        purge.add_argument("--json", action="store_true")

    def handle(self, *args: object, **opts: object) -> None:
        if opts["action"] == "purge":
            purged = services.purge_expired_files()
            if opts["json"]:
                self.stdout.write(json.dumps({"purged_jobs": purged}))
            else:
                self.stdout.write(f"Purged the files of {purged} finished import(s).")
            return
        jobs = list(queries.job_list()[: max(1, int(opts["limit"]))])  # type: ignore[call-overload]
        if opts["json"]:
            self.stdout.write(json.dumps([queries.job_report(j) for j in jobs], ensure_ascii=False))
            return
        for job in jobs:
            self.stdout.write(
                f"#{job.pk:<6} {job.status:<26} {job.file_name[:40]:<40} rows={job.rows_read} "
                f"added={job.added} removed={job.removed} rejected={job.rejected_rows}"
            )
