"""`tagbase import FILE …`: the import pipeline in this process, with a progress bar."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tagbase.accounts.management import cli_actor
from tagbase.imports import pipeline, queries, report_page, services
from tagbase.imports.models import ImportAction, ImportJob, ImportStatus
from tagbase.lib.progress import Progress


def _chunks(path: Path, size: int = 1 << 20):  # type: ignore[no-untyped-def]
    with path.open("rb") as fh:
        while chunk := fh.read(size):
            yield chunk


class Command(BaseCommand):
    help = "Import an audience file: one audience (--audience) or per-row audiences (--per-row)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="CSV file to import ('-' reads standard input)")
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--audience", help="Name of the audience (created if new)")
        target.add_argument(
            "--per-row",
            action="store_true",
            help="Rows are 'identifier; audience' with an optional third column + or - "
            "(add or remove that row)",
        )
        parser.add_argument(
            "--remove",
            action="store_true",
            help="Remove instead of add (per-row: rows without + or -)",
        )
        parser.add_argument(
            "--id-type", required=True, help="sc_id, external_id, phone, email or card"
        )
        parser.add_argument("--dry-run", action="store_true", help="Report only; apply nothing")
        parser.add_argument("--encoding", default="auto", choices=services.ENCODINGS)
        parser.add_argument("--delimiter", default="auto", help="auto, ';', ',' or tab")
        parser.add_argument("--rejects", help="Write the rejected rows CSV to this path")
        parser.add_argument("--json", action="store_true", help="Print the report as JSON")

    def handle(self, *args: object, **opts: object) -> None:
        request = services.ImportRequest(
            mode="per_row" if opts["per_row"] else "single",
            action="remove" if opts["remove"] else "add",
            id_type=str(opts["id_type"]),
            audience_name=str(opts["audience"] or ""),
            dry_run=bool(opts["dry_run"]),
            encoding=str(opts["encoding"]),
            delimiter=str(opts["delimiter"]),
        )
        name = str(opts["file"])
        chunks = iter(lambda: sys.stdin.buffer.read(1 << 20), b"") if name == "-" else None
        if chunks is None:
            path = Path(name)
            if not path.is_file():
                raise CommandError(f"{name}: no such file")
            chunks = _chunks(path)
        try:
            job = services.start_import(
                chunks,
                "stdin.csv" if name == "-" else Path(name).name,
                request,
                actor=cli_actor(),
                source="cli",
                enqueue=False,
            )
        except services.ImportError_ as exc:
            raise CommandError(exc.message) from None
        job = self._run(job)
        self._print(job, opts)
        if opts["rejects"] and (src := queries.rejects_path(job)):
            shutil.copyfile(src, str(opts["rejects"]))
        if job.status in {ImportStatus.REJECTED, ImportStatus.FAILED}:
            raise CommandError(
                f"{job.error_code}: {job.error_message}"
                + (f" (line {job.error_line})" if job.error_line else "")
            )

    def _run(self, job: ImportJob) -> ImportJob:
        with Progress("Import", total=job.size_bytes) as bar:
            done = pipeline.run_import_job(
                job.pk,
                owner=f"cli:{job.pk}",
                progress=lambda j: bar.advance(max(j.bytes_done - bar.done, 0)),
            )
        if done is None:
            raise CommandError(f"Import {job.pk} is being run by a worker; see its report later.")
        return done

    def _print(self, job: ImportJob, opts: dict[str, object]) -> None:
        report = queries.job_report(job)
        if opts["json"]:
            self.stdout.write(json.dumps(report, ensure_ascii=False, indent=2))
            return
        self.stdout.write(f"Import #{job.pk}: {job.get_status_display()}")
        if job.error_code:
            return
        keys = ["encoding", "delimiter", "rows_read", "blank", "invalid", "duplicate_in_file"]
        keys += ["not_found", "ambiguous"]
        for action in report_page.actions_used(job):  # the counters of the actions rows asked for
            keys += ["already_member", "added"] if action == ImportAction.ADD else []
            keys += ["not_member", "removed"] if action == ImportAction.REMOVE else []
        for key in keys:
            self.stdout.write(f"  {key:18} {report[key]}")
        for code, n in report["invalid_by_reason"].items():
            self.stdout.write(f"    invalid: {code:26} {n}")
        if report["audiences_created"]:
            self.stdout.write("  audiences created: " + ", ".join(report["audiences_created"]))
        if job.mode == "per_row":
            self._print_audiences(report["audiences"])

    def _print_audiences(self, audiences: list[dict[str, object]], shown: int = 50) -> None:
        """Per audience: what its add rows and its remove rows did (the first ``shown``)."""
        self.stdout.write("  per audience (added, already members / removed, not members):")
        for item in audiences[:shown]:
            self.stdout.write(
                f"    {item['name']}: +{item['added']}, {item['already_member']} / "
                f"-{item['removed']}, {item['not_member']}"
            )
        if len(audiences) > shown:
            self.stdout.write(f"    … and {len(audiences) - shown} more (see --json)")
