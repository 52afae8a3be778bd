"""``tagbase sets combine|overlap|as-of|job``: set operations and membership as of a date.

Every change goes through ``sets.services`` (and from there the one membership write path).
An expression is written on the command line left to right — ``A union B minus C`` is
``(A union B) minus C`` — with each operand ``audience:NAME``, ``segment:NAME`` (or a segment
id) or a bare audience NAME. ``combine`` makes the same job as the UI and the API; without
``--wait`` it is queued for a worker, with ``--wait`` this process runs it at once
(``pipeline.run_set_job``: the same claim and one transaction as a worker) and reports it.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder

from tagbase.accounts.management import cli_actor
from tagbase.audiences.management import audience_named, cell, table
from tagbase.audiences.services import AudienceError
from tagbase.lib.csvsafe import csv_lines
from tagbase.lib.identifiers import IdType
from tagbase.segments.management.commands.segment import segment_named
from tagbase.segments.rules import RuleError
from tagbase.sets import queries, services
from tagbase.sets.models import JobStatus, Mode, SetJob
from tagbase.sets.pipeline import run_set_job

ID_TYPES = [t.value for t in IdType]
EXPORT_BATCH = 5_000
OPERATOR_WORDS = {
    "union": "union",
    "\u222a": "union",
    "intersect": "intersect",
    "\u2229": "intersect",
    "minus": "difference",
    "difference": "difference",
    "except": "difference",
    "\u2212": "difference",
}
EXPRESSION_HELP = (
    "OPERAND OPERATOR OPERAND [OPERATOR OPERAND], read left to right; OPERAND is "
    "audience:NAME, segment:NAME (or segment:ID) or a bare audience NAME; OPERATOR is union, "
    "intersect or minus (or the signs)."
)


class Command(BaseCommand):
    help = (
        "Set operations over audiences and saved segments (combine into an audience, overlap) "
        "and an audience's members as of a past date."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="ACTION")
        p = sub.add_parser(
            "combine", help="Put an expression's result into an audience as one operation."
        )
        p.add_argument("expression", nargs="+", metavar="TOKEN", help=EXPRESSION_HELP)
        target = p.add_mutually_exclusive_group(required=True)
        target.add_argument("--new-audience", metavar="NAME", help="Create this audience.")
        target.add_argument("--audience", metavar="NAME", help="An existing audience.")
        p.add_argument(
            "--mode",
            choices=[m.value for m in Mode],
            default=Mode.ADD.value,
            help="add the result (default) or replace the audience's members with it.",
        )
        p.add_argument(
            "--dry-run", action="store_true", help="Only show what it would do; change nothing."
        )
        p.add_argument(
            "--wait", action="store_true", help="Run the job in this process and report it."
        )
        p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser(
            "overlap", help="How many customers are in each region of 2-3 operands' Venn diagram."
        )
        p.add_argument("operands", nargs="+", metavar="OPERAND")
        p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser(
            "as-of",
            help="How many customers were in an audience at a past moment (or, with --members, "
            "who: CSV on stdout).",
        )
        p.add_argument("audience", help="The audience's name.")
        p.add_argument(
            "--at",
            required=True,
            metavar="WHEN",
            help="YYYY-MM-DD (the end of that day in TIME_ZONE) or YYYY-MM-DDTHH:MM[:SS][+HH:MM].",
        )
        p.add_argument(
            "--members",
            action="store_true",
            help="Write the members as CSV: a header naming the id type, then one a line.",
        )
        p.add_argument("--id-type", choices=ID_TYPES, default=IdType.SC_ID.value)
        p.add_argument("--json", action="store_true", help="Print JSON (the count).")
        p = sub.add_parser("job", help="A combine job's status.")
        p.add_argument("job_id", type=int)
        p.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args: object, **options: Any) -> None:
        handler = getattr(self, "_" + options["subcommand"].replace("-", "_"))
        try:
            handler(options)
        except (services.SetError, AudienceError, RuleError) as exc:
            raise CommandError(exc.message) from None

    # --- combine ------------------------------------------------------------------------------

    def _combine(self, options: dict[str, Any]) -> None:
        tree = parse_tokens(options["expression"])
        audience_id = audience_named(options["audience"]).pk if options["audience"] else None
        if options["dry_run"]:
            shown = services.preview(tree, mode=options["mode"], audience_id=audience_id)
            self._print_preview(shown, options["json"])
            return
        job = services.combine(
            tree,
            actor=cli_actor(),
            mode=options["mode"],
            audience_id=audience_id,
            new_audience_name=options["new_audience"],
            enqueue=not options["wait"],
        )
        if options["wait"]:
            run_set_job(job.pk)
            job = services.get_job(job.pk)
        self._print_job(job, options["json"])
        if not options["wait"] and not options["json"]:
            self.stdout.write(f"Queued for a worker; follow it with `tagbase sets job {job.pk}`.")
        if job.status == JobStatus.FAILED:
            raise CommandError(f"Job #{job.pk} failed: {job.error}")

    def _job(self, options: dict[str, Any]) -> None:
        self._print_job(services.get_job(options["job_id"]), options["json"])

    # --- overlap ------------------------------------------------------------------------------

    def _overlap(self, options: dict[str, Any]) -> None:
        shown = services.overlap([operand(token) for token in options["operands"]])
        self._print_preview(shown, options["json"])

    # --- as-of --------------------------------------------------------------------------------

    def _as_of(self, options: dict[str, Any]) -> None:
        audience = audience_named(options["audience"])
        at = services.parse_moment(options["at"], field="--at")
        if options["members"]:
            values = queries.identifiers_as_of(audience.pk, at, options["id_type"])
            lines = csv_lines(itertools.chain([[options["id_type"]]], ([v] for v in values)))
            # Written a batch of lines at a time: constant memory, few writes.
            while batch := list(itertools.islice(lines, EXPORT_BATCH)):
                self.stdout.write("".join(batch), ending="")
            return
        found = services.as_of(audience.pk, at)
        if options["json"]:
            data = {"audience": audience.pk, "audience_name": audience.name, "at": at}
            self.stdout.write(dump({**data, "count": found.count}))
            return
        self.stdout.write(
            f"{audience.name!r} at {cell(at)} ({at.isoformat()}): {found.count:,} members."
        )

    # --- output -------------------------------------------------------------------------------

    def _print_preview(self, shown: services.Preview, as_json: bool) -> None:
        data = services.preview_summary(shown)
        if as_json:
            self.stdout.write(dump(data))
            return
        rows = [(r["label"], r["count"]) for r in data["regions"]]
        lines = [
            f"Expression: {data['summary']}",
            f"Result:     {data['result']:,} customers ({data['union']:,} in any operand)",
        ]
        if data["target"]:
            t = data["target"]
            lines.append(
                f"Into {t['name']!r} ({t['mode']}): would add {t['would_add']:,}, remove "
                f"{t['would_remove']:,}; {t['already_member']:,} already members; "
                f"{t['count_after']:,} members after."
            )
        lines += ["", table(["region", "customers"], rows)]
        self.stdout.write("\n".join(lines))

    def _print_job(self, job: SetJob, as_json: bool) -> None:
        data = queries.job_summary(job)
        if as_json:
            self.stdout.write(dump(data))
            return
        line = (
            f"Job #{data['id']} ({data['status']}): {data['summary']} into "
            f"{data['audience_name']!r} ({data['mode']}); result {cell(data['result_count'])}"
        )
        if data["operation"] is not None:
            line += (
                f"; operation #{data['operation']} added {cell(data['added'])}, "
                f"removed {cell(data['removed'])}"
            )
        if data["error"]:
            line += f"; error: {data['error']}"
        self.stdout.write(line + ".")


# --- Parsing the expression -----------------------------------------------------------------


def parse_tokens(tokens: list[str]) -> dict[str, Any]:
    """``A op B [op C]`` left to right into an expression tree."""
    if len(tokens) not in (3, 5):
        raise CommandError(
            f"Give OPERAND OPERATOR OPERAND [OPERATOR OPERAND]; got {len(tokens)} word(s): "
            + " ".join(repr(t) for t in tokens)
        )
    tree: dict[str, Any] = operand(tokens[0])
    for word, item in zip(tokens[1::2], tokens[2::2], strict=True):
        op = OPERATOR_WORDS.get(word.strip().lower())
        if op is None:
            raise CommandError(f"{word!r} is not an operator: use union, intersect or minus.")
        tree = {"op": op, "left": tree, "right": operand(item)}
    return tree


def operand(token: str) -> dict[str, int]:
    kind, sep, name = token.partition(":")
    if sep and kind.strip().lower() == "segment":
        return {"segment": segment_named(name).pk}
    if sep and kind.strip().lower() == "audience":
        return {"audience": audience_named(name).pk}
    return {"audience": audience_named(token).pk}


def dump(data: object) -> str:
    """JSON as the API writes it: times in ISO 8601."""
    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2)
