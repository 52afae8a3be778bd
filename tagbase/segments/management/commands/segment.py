"""``tagbase segment list|show|create|update|delete|preview|refresh|export|to-audience|job``.

Every change goes through ``segments.services``. A segment is named by its name (matched by key,
as audience names are) or by its id. ``to-audience`` makes the same job as the UI and the API;
without ``--wait`` it is queued for a worker, with ``--wait`` this process runs it at once
(``pipeline.run_segment_job``: the same claim and one transaction as a worker) and reports it.
"""

from __future__ import annotations

import itertools
import json
import sys
from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from tagbase.accounts.management import cli_actor
from tagbase.audiences.management import audience_named, cell, table
from tagbase.audiences.services import AudienceError
from tagbase.lib.csvsafe import csv_lines
from tagbase.lib.identifiers import IdType
from tagbase.lib.names import audience_name_key
from tagbase.segments import queries, services
from tagbase.segments.models import JobAction, JobStatus, Segment, SegmentJob
from tagbase.segments.pipeline import run_segment_job
from tagbase.segments.rules import RuleError, to_json, validate

ID_TYPES = [t.value for t in IdType]
EXPORT_BATCH = 5_000
MAX_SAMPLE = 100


class Command(BaseCommand):
    help = (
        "Work with user segments: list, show, create, update, delete, preview, refresh, export, "
        "include in an audience (to-audience) and follow its job."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="ACTION")
        p = sub.add_parser("list", help="Every segment with its last metrics.")
        p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser("show", help="One segment: its rule in words and its metrics.")
        p.add_argument("segment", help="The segment's name or id.")
        p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser("create", help="Save a rule (a JSON file) as a segment.")
        p.add_argument("name")
        p.add_argument("--rules", required=True, metavar="FILE.json", help="- reads stdin.")
        p.add_argument("--description", default="")
        p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser("update", help="Change a segment's name, description or rule.")
        p.add_argument("segment", help="The segment's name or id.")
        p.add_argument("--name", help="A new name.")
        p.add_argument("--rules", metavar="FILE.json", help="A new rule; - reads stdin.")
        p.add_argument("--description")
        p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser("delete", help="Delete a segment (refused while others use it).")
        p.add_argument("segment", help="The segment's name or id.")
        p.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        p = sub.add_parser("preview", help="A rule's metrics and first members, not saved.")
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--rules", metavar="FILE.json", help="A rule; - reads stdin.")
        which.add_argument("--segment", help="A saved segment's name or id.")
        p.add_argument("--sample", type=int, default=10, help=f"Members to list, 0-{MAX_SAMPLE}.")
        p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser("refresh", help="Recompute a segment's metrics now.")
        p.add_argument("segment", help="The segment's name or id.")
        p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser(
            "export",
            help="The members now as CSV on stdout: a header naming the id type, then one "
            "identifier a line (members without one are left out).",
        )
        p.add_argument("segment", help="The segment's name or id.")
        p.add_argument("--id-type", choices=ID_TYPES, default=IdType.SC_ID.value)
        p = sub.add_parser(
            "to-audience", help="Add the members to an audience (or remove them) as one operation."
        )
        p.add_argument("segment", help="The segment's name or id.")
        p.add_argument("--action", choices=[a.value for a in JobAction], default="add")
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("--audience", help="An existing audience's name.")
        target.add_argument("--new-audience", metavar="NAME", help="Create this audience (add).")
        p.add_argument(
            "--wait", action="store_true", help="Run the job in this process and report it."
        )
        p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser("job", help="An include job's status.")
        p.add_argument("job_id", type=int)
        p.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args: object, **options: Any) -> None:
        handler = getattr(self, "_" + options["subcommand"].replace("-", "_"))
        try:
            handler(options)
        except (services.SegmentError, AudienceError, RuleError) as exc:
            raise CommandError(exc.message) from None

    # --- reading ------------------------------------------------------------------------------

    def _list(self, options: dict[str, Any]) -> None:
        segments = list(Segment.objects.order_by("name_key", "pk"))
        if options["json"]:
            self.stdout.write(dump([segment_row(s) for s in segments]))
            return
        rows = [
            (s.pk, s.name, s.customers, _percent(s.percent_customers), s.total_value, s.metrics_at)
            for s in segments
        ]
        self.stdout.write(
            table(["id", "name", "customers", "% customers", "total value", "as of"], rows)
        )

    def _show(self, options: dict[str, Any]) -> None:
        self._print_segment(segment_named(options["segment"]), options["json"])

    def _preview(self, options: dict[str, Any]) -> None:
        sample = options["sample"]
        if not 0 <= sample <= MAX_SAMPLE:
            raise CommandError(f"--sample must be 0 to {MAX_SAMPLE}.")
        if options["rules"] is not None:
            rules, segment_id = read_rules(options["rules"]), None
        else:
            segment = segment_named(options["segment"])
            rules, segment_id = segment.rules, segment.pk
        shown = services.preview(rules, sample=sample, segment_id=segment_id)
        m = shown.metrics
        metrics = {
            "customers": m.customers,
            "percent_customers": m.percent_customers,
            "percent_revenue": m.percent_revenue,
            "average_receipt": m.average_receipt,
            "total_value": m.total_value,
            "as_of": shown.at,
        }
        if options["json"]:
            data = {
                "rules": to_json(shown.rules),
                "summary": shown.summary,
                "metrics": metrics,
                "sample": [c.sc_id for c in shown.sample],
            }
            self.stdout.write(dump(data))
            return
        lines = [f"Rule:        {shown.summary}", *_metric_lines(metrics)]
        if sample:
            ids = ", ".join(str(c.sc_id) for c in shown.sample) or "-"
            lines.append(f"First members (sc_id): {ids}")
        self.stdout.write("\n".join(lines))

    def _export(self, options: dict[str, Any]) -> None:
        segment = segment_named(options["segment"])
        id_type = IdType(options["id_type"])
        values = queries.iter_identifiers(validate(segment.rules), id_type.value)
        lines = csv_lines(itertools.chain([[id_type.value]], ([v] for v in values)))
        # Written a batch of lines at a time: constant memory, few writes.
        while batch := list(itertools.islice(lines, EXPORT_BATCH)):
            self.stdout.write("".join(batch), ending="")

    def _job(self, options: dict[str, Any]) -> None:
        self._print_job(services.get_job(options["job_id"]), options["json"])

    # --- writing ------------------------------------------------------------------------------

    def _create(self, options: dict[str, Any]) -> None:
        rules = read_rules(options["rules"])
        segment = services.create_segment(
            options["name"], rules, actor=cli_actor(), description=options["description"]
        )
        if options["json"]:
            self.stdout.write(dump(segment_dict(segment)))
            return
        self.stdout.write(
            f"Created segment {segment.name!r} (id {segment.pk}): "
            f"{cell(segment.customers)} customers."
        )

    def _update(self, options: dict[str, Any]) -> None:
        if options["name"] is None and options["rules"] is None and options["description"] is None:
            raise CommandError("Nothing to change: give --name, --rules and/or --description.")
        segment = segment_named(options["segment"])
        rules = read_rules(options["rules"]) if options["rules"] is not None else None
        segment = services.update_segment(
            segment,
            actor=cli_actor(),
            name=options["name"],
            rules=rules,
            description=options["description"],
        )
        if options["json"]:
            self.stdout.write(dump(segment_dict(segment)))
            return
        self.stdout.write(
            f"Updated segment {segment.name!r} (id {segment.pk}): "
            f"{cell(segment.customers)} customers."
        )

    def _delete(self, options: dict[str, Any]) -> None:
        segment = segment_named(options["segment"])
        if not options["yes"]:
            _confirm(f"Delete segment {segment.name!r}? Audiences keep their members. [y/N] ")
        services.delete_segment(segment, actor=cli_actor())
        self.stdout.write(f"Deleted segment {segment.name!r}.")

    def _refresh(self, options: dict[str, Any]) -> None:
        segment = services.refresh_metrics(segment_named(options["segment"]))
        self._print_segment(segment, options["json"])

    def _to_audience(self, options: dict[str, Any]) -> None:
        segment = segment_named(options["segment"])
        audience_id = audience_named(options["audience"]).pk if options["audience"] else None
        job = services.include_in_audience(
            segment,
            action=options["action"],
            actor=cli_actor(),
            audience_id=audience_id,
            new_audience_name=options["new_audience"],
            enqueue=not options["wait"],
        )
        if options["wait"]:
            run_segment_job(job.pk)
            job = services.get_job(job.pk)
        if options["json"]:
            self._print_job(job, True)
        else:
            self._print_job(job, False)
            if not options["wait"]:
                self.stdout.write(
                    f"Queued for a worker; follow it with `tagbase segment job {job.pk}`."
                )
        if job.status == JobStatus.FAILED:
            raise CommandError(f"Job #{job.pk} failed: {job.error}")

    # --- output -------------------------------------------------------------------------------

    def _print_segment(self, segment: Segment, as_json: bool) -> None:
        if as_json:
            self.stdout.write(dump(segment_dict(segment)))
            return
        data = segment_dict(segment)
        lines = [
            f"Segment:     {segment.name} (id {segment.pk})",
            f"Description: {segment.description or '-'}",
            f"Rule:        {data['summary']}",
            *_metric_lines(data["metrics"]),
        ]
        self.stdout.write("\n".join(lines))

    def _print_job(self, job: SegmentJob, as_json: bool) -> None:
        data = queries.job_summary(job)
        if as_json:
            self.stdout.write(dump(data))
            return
        verb = "add to" if data["action"] == JobAction.ADD else "remove from"
        line = (
            f"Job #{data['id']} ({data['status']}): {verb} {data['audience_name']!r} the members "
            f"of {data['segment_name']!r}; expected {cell(data['expected'])}"
        )
        if data["operation"] is not None:
            changed = data["added"] if data["action"] == JobAction.ADD else data["removed"]
            done = "added" if data["action"] == JobAction.ADD else "removed"
            line += f"; operation #{data['operation']} {done} {cell(changed)}"
        if data["error"]:
            line += f"; error: {data['error']}"
        self.stdout.write(line + ".")


# --- Helpers ----------------------------------------------------------------------------------


def segment_named(text: str) -> Segment:
    """The segment with this name (matched by key) or, failing that, this id."""
    found = Segment.objects.filter(name_key=audience_name_key(text)).first()
    if found is None and text.strip().isdigit():
        found = Segment.objects.filter(pk=int(text.strip())).first()
    if found is None:
        raise CommandError(f"No segment named {text!r} (see `tagbase segment list`).")
    return found


def read_rules(file: str) -> Any:
    """The JSON rule in FILE, or on stdin for ``-``."""
    label = "stdin" if file == "-" else file
    try:
        if file == "-":
            if sys.stdin.isatty():
                raise CommandError("stdin is a terminal: give --rules FILE.json or pipe JSON in.")
            text = sys.stdin.read()
        else:
            with open(file, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as exc:
        raise CommandError(f"{file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{label}: not UTF-8 text.") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise CommandError(
            f"{label}: not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None


def metrics_dict(segment: Segment) -> dict[str, Any]:
    return {
        "customers": segment.customers,
        "percent_customers": segment.percent_customers,
        "percent_revenue": segment.percent_revenue,
        "average_receipt": segment.average_receipt,
        "total_value": segment.total_value,
        "as_of": segment.metrics_at,
    }


def segment_row(segment: Segment) -> dict[str, Any]:
    """A segment as `list --json` prints it (the API's list item keys)."""
    return {
        "id": segment.pk,
        "name": segment.name,
        "description": segment.description,
        "metrics": metrics_dict(segment),
        "created_at": segment.created_at,
        "updated_at": segment.updated_at,
    }


def segment_dict(segment: Segment) -> dict[str, Any]:
    """A segment as `show --json` prints it (the API's keys)."""
    return {
        **segment_row(segment),
        "rules": segment.rules,
        "summary": services.summary(segment),
        "uses": list(segment.uses or []),
    }


def dump(data: object) -> str:
    """JSON as the API writes it: decimals as strings, times in ISO 8601."""
    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2)


def _percent(value: Decimal | None) -> str | None:
    return None if value is None else f"{value}%"


def _metric_lines(m: dict[str, Any]) -> list[str]:
    return [
        f"Customers:   {cell(m['customers'])} ({_percent(m['percent_customers']) or '-'} "
        "of all customers)",
        f"Revenue:     {cell(m['total_value'])} ({_percent(m['percent_revenue']) or '-'} "
        "of all revenue)",
        f"Avg receipt: {cell(m['average_receipt']) if m['average_receipt'] is not None else '—'}",
        f"As of:       {cell(m['as_of'])}",
    ]


def _confirm(prompt: str) -> None:
    if not sys.stdin.isatty():
        raise CommandError("Refusing to delete without --yes: stdin is not a terminal.")
    if input(prompt).strip().lower() not in {"y", "yes"}:
        raise CommandError("Not deleted.")
