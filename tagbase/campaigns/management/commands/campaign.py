"""``tagbase campaign list|show|activate|suspend|deactivate|run-due``.

Status changes go through ``campaigns.services``, as from the UI and the API. A campaign is named
by its name (matched by key, as audience names are) or by its id. ``run-due`` does once, in this
process, what every worker's tick does on its own: fire the scheduled triggers that are due, run
the due steps of every active campaign, deliver the messages left pending — useful where no
worker runs, and with ``--now`` to see what a moment would do.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.serializers.json import DjangoJSONEncoder
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from tagbase.accounts.management import cli_actor
from tagbase.audiences.management import cell, table
from tagbase.audiences.models import Audience
from tagbase.campaigns import engine, outbox, queries, services
from tagbase.campaigns.api import campaign_out, campaign_row
from tagbase.campaigns.graph import KINDS
from tagbase.campaigns.models import Batch, Campaign, CampaignStatus
from tagbase.campaigns.nodes import GraphError
from tagbase.lib.names import audience_name_key

STATUS_CHANGES = {
    "activate": services.activate_campaign,
    "suspend": services.suspend_campaign,
    "deactivate": services.deactivate_campaign,
}


class Command(BaseCommand):
    help = (
        "Work with campaigns: list, show, activate, suspend, deactivate, and run what is due "
        "now (run-due)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="ACTION")
        p = sub.add_parser("list", help="Every campaign with its status and customers entered.")
        p.add_argument("--active", action="store_true", help="Only active campaigns.")
        p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser("show", help="One campaign: its settings and the counts per node.")
        p.add_argument("campaign", help="The campaign's name or id.")
        p.add_argument("--json", action="store_true", help="Print JSON (with the graph).")
        for name, text in [
            ("activate", "Start or resume a campaign (its graph is checked again)."),
            ("suspend", "Pause a campaign: waiting customers stay where they are."),
            ("deactivate", "Stop a campaign: waiting customers leave it."),
        ]:
            p = sub.add_parser(name, help=text)
            p.add_argument("campaign", help="The campaign's name or id.")
            p.add_argument("--json", action="store_true", help="Print JSON.")
        p = sub.add_parser(
            "run-due",
            help="Once, now: fire the scheduled triggers that are due, run the due steps of "
            "every active campaign, deliver pending messages.",
        )
        p.add_argument(
            "--now",
            metavar="ISO",
            help="Act as if it were this moment (ISO 8601 date-time; default: now).",
        )
        p.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args: object, **options: Any) -> None:
        subcommand = options["subcommand"]
        try:
            if subcommand in STATUS_CHANGES:
                self._set_status(subcommand, options)
            else:
                getattr(self, "_" + subcommand.replace("-", "_"))(options)
        except (services.CampaignError, GraphError) as exc:
            raise CommandError(exc.message) from None

    # --- reading ------------------------------------------------------------------------------

    def _list(self, options: dict[str, Any]) -> None:
        campaigns = list(queries.campaign_list(only_active=options["active"]))
        if options["json"]:
            self.stdout.write(dump([campaign_row(c) for c in campaigns]))
            return
        rows = [
            (c.pk, c.name, c.status, c.trigger_kind, c.entered, c.version, c.updated_at)  # type: ignore[attr-defined]
            for c in campaigns
        ]
        self.stdout.write(
            table(["id", "name", "status", "trigger", "entered", "version", "updated"], rows)
        )

    def _show(self, options: dict[str, Any]) -> None:
        self._print_campaign(campaign_named(options["campaign"]), options["json"])

    # --- writing ------------------------------------------------------------------------------

    def _set_status(self, action: str, options: dict[str, Any]) -> None:
        campaign = STATUS_CHANGES[action](campaign_named(options["campaign"]), actor=cli_actor())
        if options["json"]:
            self.stdout.write(dump(campaign_out(campaign.pk)))
            return
        self.stdout.write(
            f"Campaign {campaign.name!r} (id {campaign.pk}) is now {campaign.status}."
        )

    def _run_due(self, options: dict[str, Any]) -> None:
        now = _moment(options["now"])
        fired = engine.fire_scheduled(now=now)
        batches = list(Batch.objects.filter(pk__in=fired).select_related("campaign"))
        ran = []
        for campaign in Campaign.objects.filter(status=CampaignStatus.ACTIVE).order_by("name_key"):
            ran.append((campaign, engine.run_due(campaign.pk, now=now)))
        sent = outbox.deliver()
        if options["json"]:
            data = {
                "now": now,
                "batches": [
                    {
                        "id": b.pk,
                        "campaign": b.campaign_id,
                        "requested": b.requested,
                        "entered": b.entered,
                    }
                    for b in batches
                ],
                "campaigns": [{"id": c.pk, "name": c.name, "steps": n} for c, n in ran],
                "messages_sent": sent,
            }
            self.stdout.write(dump(data))
            return
        lines = [f"As of {cell(now)}:"]
        for b in batches:
            lines.append(
                f"Fired {b.campaign.name!r} (id {b.campaign_id}): batch #{b.pk}, "
                f"{cell(b.entered)} of {cell(b.requested)} customers entered."
            )
        for campaign, steps in ran:
            done = f"{cell(steps)} step(s) run" if steps else "nothing due"
            lines.append(f"Campaign {campaign.name!r} (id {campaign.pk}): {done}.")
        if not ran:
            lines.append("No active campaign.")
        lines.append(f"Messages sent: {cell(sent)}.")
        self.stdout.write("\n".join(lines))

    # --- output -------------------------------------------------------------------------------

    def _print_campaign(self, campaign: Campaign, as_json: bool) -> None:
        data = campaign_out(campaign.pk)
        if as_json:
            self.stdout.write(dump(data))
            return
        trigger = KINDS[data["trigger_kind"]].label
        lines = [
            f"Campaign:    {data['name']} (id {data['id']})",
            f"Status:      {data['status']}",
            f"Description: {data['description'] or '-'}",
            f"Trigger:     {trigger} ({data['trigger_kind']})",
            f"Re-entry:    {_reentry(data['reentry_days'])}",
            f"Version:     {data['version']}, saved {cell(data['updated_at'])}"
            + (f" by {data['updated_by']}" if data["updated_by"] else ""),
            f"Entered:     {cell(data['entered'])}",
            "",
            self._node_table(data),
        ]
        self.stdout.write("\n".join(lines))

    def _node_table(self, data: dict[str, Any]) -> str:
        nodes = data["graph"]["nodes"]
        audience_ids = {
            n["params"]["audience"]
            for n in nodes
            if n["kind"] == "audience" and "audience" in n["params"]
        }
        names = dict(Audience.objects.filter(pk__in=audience_ids).values_list("pk", "name"))
        rows = []
        for n in nodes:
            stats = data["stats"].get(n["id"], {})
            out = ", ".join(f"{port} {cell(count)}" for port, count in stats.get("out", {}).items())
            rows.append(
                (
                    n["id"],
                    queries.describe_node(n, names),
                    stats.get("in", 0),
                    out or "-",
                    stats.get("stopped", 0),
                    stats.get("last_error") or "-",
                )
            )
        return table(["node", "does", "in", "out", "stopped", "last error"], rows)


# --- Helpers ----------------------------------------------------------------------------------


def campaign_named(text: str) -> Campaign:
    """The campaign with this name (matched by key) or, failing that, this id."""
    found = Campaign.objects.filter(name_key=audience_name_key(text)).first()
    if found is None and text.strip().isdigit():
        found = Campaign.objects.filter(pk=int(text.strip())).first()
    if found is None:
        raise CommandError(f"No campaign named {text!r} (see `tagbase campaign list`).")
    return found


def _moment(text: str | None) -> datetime:
    if text is None:
        return timezone.now()
    try:
        parsed = parse_datetime(text.strip())
    except ValueError:
        parsed = None
    if parsed is None:
        raise CommandError(
            f"--now {text!r} is not an ISO 8601 date-time (e.g. 2030-01-31T09:00:00+03:00)."
        )
    return timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed


def _reentry(days: int | None) -> str:
    if days is None:
        return "never again (a customer enters at most once)"
    if days == 0:
        return "any time"
    return f"after {cell(days)} days"


def dump(data: object) -> str:
    """JSON as the API writes it: times in ISO 8601."""
    return json.dumps(data, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2)
