"""``tagbase audience list|show|create|rename|delete|members|export|add|remove`` and the
scheduled exports: ``schedule-export``, ``export-schedules``, ``unschedule-export``.

Every change goes through ``audiences.services``; ``add`` and ``remove`` resolve all the given
identifiers first and then make ONE service call, so one command is one operation (and one undo).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from datetime import datetime, time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from tagbase.accounts.management import cli_actor
from tagbase.audiences import exports, queries, services
from tagbase.audiences.management import (
    audience_named,
    cell,
    iso,
    operation_dict,
    operation_summary,
    table,
    to_json,
)
from tagbase.audiences.models import Audience, ExportSchedule, OperationKind
from tagbase.customers.queries import Resolution, resolve_identifiers
from tagbase.lib.csvsafe import unescape_cell
from tagbase.lib.identifiers import IdType

ID_TYPES = [t.value for t in IdType]


class Command(BaseCommand):
    help = (
        "Work with target audiences: list, show, create, rename, delete, members, export, add, "
        "remove; scheduled exports: schedule-export, export-schedules, unschedule-export."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        p = sub.add_parser("list", help="Every audience with its member count and date set.")
        p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser("show", help="One audience and its last 10 operations.")
        p.add_argument("name")
        p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser("create", help="Create an empty audience.")
        p.add_argument("name")
        p.add_argument("--description", default="", help="Free text shown with the audience.")
        p = sub.add_parser("rename", help="Give an audience a new name (members unchanged).")
        p.add_argument("name")
        p.add_argument("new_name")
        p = sub.add_parser("delete", help="Delete an audience and its memberships.")
        p.add_argument("name")
        p.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        p = sub.add_parser(
            "members",
            help="Members as CSV on stdout: a header naming the id type, then one identifier a "
            "line (members without one are left out; cards: every active card).",
        )
        p.add_argument("name")
        p.add_argument("--id-type", choices=ID_TYPES, default=IdType.SC_ID.value)
        self._export_parsers(sub)
        for verb in ("add", "remove"):
            p = sub.add_parser(verb, help=f"{verb.capitalize()} customers named one per line.")
            p.add_argument("name")
            p.add_argument("--id-type", choices=ID_TYPES, required=True)
            # Required (use - for stdin): an optional positional after an option is lost by
            # argparse ("add VIP --id-type phone FILE" would leave FILE unrecognised).
            p.add_argument("file", help="A file of identifiers, one a line; - reads stdin.")
            p.add_argument("--json", action="store_true", help="Print JSON.")

    def _export_parsers(self, sub: Any) -> None:
        formats = list(exports.EXPORT_FORMATS)
        p = sub.add_parser(
            "export",
            help="Members as CSV with a header: an identifier type, or an ad platform's hashed "
            "customer list (google, meta); on stdout, or written atomically to --output.",
        )
        p.add_argument("name")
        p.add_argument("--format", dest="export_format", choices=formats, default="sc_id")
        p.add_argument("--output", "-o", help="Write this file (temporary file, then rename).")
        p.add_argument("--bom", action="store_true", help="Start with a UTF-8 BOM (Excel).")
        p = sub.add_parser(
            "schedule-export",
            help="Export an audience to a new file in TAGBASE_EXPORT_DIR every day (or every "
            "week) at a local time (TIME_ZONE); the worker writes it.",
        )
        p.add_argument("name")
        p.add_argument("--format", dest="export_format", choices=formats, required=True)
        p.add_argument("--at", required=True, help="Local time HH:MM, e.g. 03:00.")
        p.add_argument(
            "--weekly", metavar="DAY", choices=exports.WEEKDAYS, help="Only on this weekday."
        )
        p.add_argument("--bom", action="store_true", help="Start with a UTF-8 BOM (Excel).")
        p = sub.add_parser(
            "export-schedules", help="Every scheduled export with its next and last run."
        )
        p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser("unschedule-export", help="Delete a scheduled export (files stay).")
        p.add_argument("schedule_id", type=int)

    def handle(self, *args: object, **options: Any) -> None:
        handler = getattr(self, "_" + options["action"].replace("-", "_"))
        try:
            handler(options)
        except (services.AudienceError, exports.ExportError) as exc:
            raise CommandError(exc.message) from None

    # --- reading ------------------------------------------------------------------------------

    def _list(self, options: dict[str, Any]) -> None:
        audiences = list(queries.audience_list())
        if options["json"]:
            self.stdout.write(to_json([_audience_row(a) for a in audiences]))
            return
        rows = [(a.name, a.member_count, a.last_set_at) for a in audiences]
        self.stdout.write(table(["name", "members", "date set"], rows))

    def _show(self, options: dict[str, Any]) -> None:
        audience = audience_named(options["name"])
        ops = list(queries.audience_operations(audience.pk).order_by("-created_at", "-id")[:10])
        if options["json"]:
            data = {**_audience_row(audience), **_details(audience)}
            data["operations"] = [operation_dict(op) for op in ops]
            self.stdout.write(to_json(data))
            return
        lines = [
            f"Audience:    {audience.name} (id {audience.pk})",
            f"Description: {audience.description or '-'}",
            f"Members:     {audience.member_count:,}",
            f"Date set:    {cell(audience.last_set_at)}",
            f"Created:     {cell(audience.created_at)}",
            "",
            "Last operations:",
        ]
        rows = [
            (op.pk, op.created_at, op.kind, op.action, op.changed, op.status, op.actor_label)
            for op in ops
        ]
        lines.append(table(["id", "when", "kind", "action", "changed", "status", "actor"], rows))
        self.stdout.write("\n".join(lines))

    def _members(self, options: dict[str, Any]) -> None:
        audience = audience_named(options["name"])
        id_type = IdType(options["id_type"])
        # The same rows as `audience export --format <type>` (audiences.exports), written a
        # block at a time: constant memory, few writes.
        for text in exports.csv_text(exports.member_rows(audience.pk, id_type.value)):
            self.stdout.write(text, ending="")

    def _export(self, options: dict[str, Any]) -> None:
        audience = audience_named(options["name"])
        export_format = options["export_format"]
        counted = exports.Counted(exports.member_rows(audience.pk, export_format), skip=1)
        output = options["output"]
        if not output:
            for text in exports.csv_text(counted, bom=options["bom"]):
                self.stdout.write(text, ending="")
            return
        path = Path(output)
        try:
            exports.write_atomically(path, exports.csv_chunks(counted, bom=options["bom"]))
        except OSError as exc:
            raise CommandError(f"{output}: {exc.strerror or exc}") from None
        self.stdout.write(f"Wrote {counted.rows:,} rows of audience {audience.name!r} to {path}.")

    def _schedule_export(self, options: dict[str, Any]) -> None:
        audience = audience_named(options["name"])
        weekly = options["weekly"]
        schedule = exports.create_export_schedule(
            audience,
            export_format=options["export_format"],
            frequency="weekly" if weekly else "daily",
            weekday=exports.WEEKDAYS.index(weekly) if weekly else None,
            at_time=_clock_time(options["at"]),
            bom=options["bom"],
            actor=cli_actor(),
        )
        self.stdout.write(
            f"Scheduled export #{schedule.pk} of {audience.name!r} as {schedule.export_format}, "
            f"{exports.describe_schedule(schedule)} ({settings.TIME_ZONE}); first run "
            f"{cell(schedule.next_run_at)}, into {settings.TAGBASE_EXPORT_DIR}."
        )

    def _export_schedules(self, options: dict[str, Any]) -> None:
        schedules = list(ExportSchedule.objects.select_related("audience"))
        if options["json"]:
            self.stdout.write(to_json([_schedule_row(s) for s in schedules]))
            return
        rows = [
            (
                s.pk,
                s.audience.name,
                s.export_format,
                exports.describe_schedule(s),
                s.next_run_at,
                s.last_run_at,
                s.last_rows if not s.last_error else f"error: {s.last_error}",
            )
            for s in schedules
        ]
        headers = ["id", "audience", "format", "when", "next run", "last run", "last rows"]
        self.stdout.write(table(headers, rows))

    def _unschedule_export(self, options: dict[str, Any]) -> None:
        schedule = exports.delete_export_schedule(options["schedule_id"], actor=cli_actor())
        self.stdout.write(
            f"Deleted scheduled export #{options['schedule_id']} of {schedule.audience.name!r}."
        )

    # --- writing ------------------------------------------------------------------------------

    def _create(self, options: dict[str, Any]) -> None:
        audience = services.create_audience(
            options["name"], actor=cli_actor(), description=options["description"]
        )
        self.stdout.write(f"Created audience {audience.name!r} (id {audience.pk}).")

    def _rename(self, options: dict[str, Any]) -> None:
        audience = audience_named(options["name"])
        old = audience.name
        audience = services.rename_audience(audience, options["new_name"], actor=cli_actor())
        self.stdout.write(f"Renamed {old!r} to {audience.name!r}.")

    def _delete(self, options: dict[str, Any]) -> None:
        audience = audience_named(options["name"])
        if not options["yes"]:
            _confirm(
                f"Delete audience {audience.name!r} and its {audience.member_count:,} "
                "membership(s)? History of its operations is kept. [y/N] "
            )
        deleted = services.delete_audience(audience, actor=cli_actor())
        self.stdout.write(f"Deleted audience {audience.name!r} ({deleted:,} memberships).")

    def _add(self, options: dict[str, Any]) -> None:
        self._change(options, services.add_customers_to_audience)

    def _remove(self, options: dict[str, Any]) -> None:
        self._change(options, services.remove_customers_from_audience)

    def _change(self, options: dict[str, Any], service: Any) -> None:
        audience = audience_named(options["name"])
        id_type = IdType(options["id_type"])
        values = _read_identifiers(options["file"], id_type)
        if not values:
            raise CommandError(f"No identifiers in {_source_label(options['file'])}.")
        resolution = resolve_identifiers(id_type, values)
        outcome = services.IdentifierOutcome(
            not_found=len(resolution.not_found),
            ambiguous=len(resolution.ambiguous),
            invalid=len(resolution.invalid),
        )
        op = service(
            audience,
            resolution.customer_ids,
            actor=cli_actor(),
            kind=OperationKind.CLI,
            source_ref=_source_label(options["file"])[:200],
            outcome=outcome,
        )
        if options["json"]:
            self.stdout.write(to_json(_change_report(op, resolution)))
            return
        self.stdout.write(operation_summary(op))
        if resolution.duplicates:
            self.stdout.write(f"{resolution.duplicates:,} repeated value(s) were counted once.")
        if resolution.not_found or resolution.ambiguous or resolution.invalid:
            self.stdout.write("Run with --json to list the values that were not used.")


def _clock_time(text: str) -> time:
    """``HH:MM`` (24-hour) as a time; a one-line error otherwise."""
    try:
        return datetime.strptime(text.strip(), "%H:%M").time()
    except ValueError:
        raise CommandError(f"--at {text!r}: give a time as HH:MM, e.g. 03:00.") from None


def _schedule_row(schedule: ExportSchedule) -> dict[str, Any]:
    return {
        "id": schedule.pk,
        "audience_id": schedule.audience_id,
        "audience": schedule.audience.name,
        "format": schedule.export_format,
        "frequency": schedule.frequency,
        "weekday": exports.WEEKDAYS[schedule.weekday] if schedule.weekday is not None else None,
        "at": schedule.at_time.strftime("%H:%M"),
        "time_zone": settings.TIME_ZONE,
        "bom": schedule.bom,
        "created_by": schedule.created_by_label,
        "next_run_at": iso(schedule.next_run_at),
        "last_run_at": iso(schedule.last_run_at),
        "last_file": schedule.last_file or None,
        "last_rows": schedule.last_rows,
        "last_error": schedule.last_error or None,
    }


def _audience_row(audience: Audience) -> dict[str, Any]:
    return {
        "id": audience.pk,
        "name": audience.name,
        "member_count": audience.member_count,
        "last_set_at": iso(audience.last_set_at),
    }


def _details(audience: Audience) -> dict[str, Any]:
    return {
        "description": audience.description,
        "created_at": iso(audience.created_at),
        "updated_at": iso(audience.updated_at),
    }


def _change_report(op: Any, resolution: Resolution) -> dict[str, Any]:
    return {
        "operation": operation_dict(op),
        "matched": resolution.matched,
        "duplicates": resolution.duplicates,
        "not_found": list(resolution.not_found),
        "ambiguous": list(resolution.ambiguous),
        "invalid": [
            {"value": r.value, "code": r.code, "message": r.message} for r in resolution.invalid
        ],
    }


def _confirm(prompt: str) -> None:
    if not sys.stdin.isatty():
        raise CommandError("Refusing to delete without --yes: stdin is not a terminal.")
    answer = input(prompt).strip().lower()
    if answer not in {"y", "yes"}:
        raise CommandError("Not deleted.")


# --- identifiers in and out -------------------------------------------------------------------


def _source_label(file: str) -> str:
    return "stdin" if file == "-" else f"file:{Path(file).name}"


def _read_identifiers(file: str, id_type: IdType) -> list[str]:
    """Non-blank lines, trimmed, with our own formula escape undone (so the output of
    ``audience members`` reads back). A first line naming the id type is a header."""
    if file == "-":
        if sys.stdin.isatty():
            raise CommandError(
                "stdin is a terminal: give a FILE, or pipe identifiers in (one a line)."
            )
        # Bytes when there are any, so a decoding error can name its line.
        values = _clean_lines(getattr(sys.stdin, "buffer", sys.stdin), "stdin")
    else:
        try:
            with open(file, "rb") as handle:
                values = _clean_lines(handle, file)
        except OSError as exc:
            raise CommandError(f"{file}: {exc.strerror or exc}") from None
    if values and values[0].lower() == id_type.value:
        values = values[1:]
    return values


def _clean_lines(lines: Iterable[bytes | str], label: str) -> list[str]:
    values = []
    for number, line in enumerate(lines, start=1):
        try:
            text = line.decode("utf-8") if isinstance(line, bytes) else line
        except UnicodeDecodeError:
            raise CommandError(f"{label}: line {number} is not UTF-8 text.") from None
        text = text.removeprefix("\ufeff").strip() if number == 1 else text.strip()
        if text:
            values.append(unescape_cell(text))
    return values
