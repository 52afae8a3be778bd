"""Every write use case of campaigns.

Saving validates the graph (``graph.validate`` then ``graph.check_references``), creates the
audiences that audience actions name as new (in the same transaction), bumps ``version`` and
stores a ``CampaignVersion`` snapshot. Statuses: ``activate`` (validates again — an audience may
have been deleted since — and starts scheduled triggers from now: a moment that passed before
activation does not fire), ``suspend`` (nothing runs; waiting customers stay), ``deactivate``
(nothing runs; waiting customers leave the campaign).
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from tagbase.accounts import audit
from tagbase.accounts.actors import Actor
from tagbase.audiences.services import AudienceError, get_or_create_audience
from tagbase.campaigns import graph as graphs
from tagbase.campaigns.models import (
    Campaign,
    CampaignStatus,
    CampaignVersion,
    Entry,
    OutboxMessage,
    OutboxStatus,
    Passage,
    SegmentWatch,
    Token,
)
from tagbase.campaigns.nodes import GraphError
from tagbase.customers.erasure import ErasedCustomer
from tagbase.lib.errors import ServiceError
from tagbase.lib.names import InvalidName, audience_name_key, clean_audience_name

__all__ = ["CampaignError", "GraphError"]
MAX_REENTRY_DAYS = 36_500
_UNSET: Any = object()


class CampaignError(ServiceError):
    code = "campaign_error"


class CampaignNotFound(CampaignError):
    code = "campaign_not_found"


class CampaignNameTaken(CampaignError):
    code = "campaign_name_taken"


def clean_graph(raw: Any, *, actor: Actor) -> dict[str, Any]:
    """The cleaned graph with new audiences created (call inside a transaction)."""
    cleaned = graphs.validate(raw)
    for node in cleaned["nodes"]:
        params = node["params"]
        if node["kind"] == "audience" and params.get("new_audience"):
            try:
                audience, _ = get_or_create_audience(params.pop("new_audience"), actor=actor)
            except AudienceError as exc:
                raise GraphError(exc.message, node=node["id"], field="new_audience") from None
            params["audience"] = audience.pk
    graphs.check_references(cleaned)
    return cleaned


def _clean_name(name: str) -> str:
    try:
        return clean_audience_name(name)
    except InvalidName as exc:
        raise CampaignError(exc.message, field="name", code="campaign_name_invalid") from None


def _clean_reentry(days: Any) -> int | None:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_REENTRY_DAYS:
        raise CampaignError(
            f"The re-entry interval is a number of days from 0 to {MAX_REENTRY_DAYS}, or empty "
            "(never again).",
            field="reentry_days",
        )
    return days


def _check_name_free(display: str, exclude: int | None = None) -> None:
    taken = Campaign.objects.filter(name_key=audience_name_key(display))
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise CampaignNameTaken(f"A campaign named {display!r} already exists.", field="name")


def _snapshot(campaign: Campaign, actor: Actor) -> None:
    CampaignVersion.objects.create(
        campaign=campaign,
        version=campaign.version,
        name=campaign.name,
        reentry_days=campaign.reentry_days,
        graph=campaign.graph,
        saved_at=campaign.updated_at,
        saved_by=actor.user,
    )


def create_campaign(
    name: str,
    graph: Any,
    *,
    actor: Actor,
    description: str = "",
    reentry_days: int | None = None,
) -> Campaign:
    """A new, not active campaign (version 1). Not idempotent: the name must be free."""
    display = _clean_name(name)
    reentry = _clean_reentry(reentry_days)
    _check_name_free(display)
    try:
        with transaction.atomic():
            cleaned = clean_graph(graph, actor=actor)
            campaign = Campaign.objects.create(
                name=display,
                description=description.strip(),
                reentry_days=reentry,
                graph=cleaned,
                trigger_kind=graphs.Graph(cleaned).trigger_kind().kind,
                created_by=actor.user,
                updated_by=actor.user,
            )
            _snapshot(campaign, actor)
            summary = {"name": campaign.name, "version": campaign.version}
            audit.record(actor, "campaign.created", "campaign", campaign.pk, summary)
    except IntegrityError:
        raise CampaignNameTaken(
            f"A campaign named {display!r} already exists.", field="name"
        ) from None
    return campaign


def update_campaign(
    campaign: Campaign,
    *,
    actor: Actor,
    name: str | None = None,
    graph: Any = None,
    description: str | None = None,
    reentry_days: Any = _UNSET,
) -> Campaign:
    """Change what is given; every save is a new version. Waiting customers stay at their node
    (a node that no longer exists drops them, recorded on its step)."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
        if locked is None:
            raise CampaignNotFound(f"Campaign {campaign.pk} does not exist.")
        before, before_graph = locked.name, locked.graph
        if name is not None:
            locked.name = _clean_name(name)
            _check_name_free(locked.name, exclude=locked.pk)
        if graph is not None:
            locked.graph = clean_graph(graph, actor=actor)
            locked.trigger_kind = graphs.Graph(locked.graph).trigger_kind().kind
        if description is not None:
            locked.description = description.strip()
        if reentry_days is not _UNSET:
            locked.reentry_days = _clean_reentry(reentry_days)
        locked.version += 1
        locked.updated_by = actor.user
        locked.updated_at = timezone.now()
        try:
            with transaction.atomic():
                locked.save()
        except IntegrityError:
            raise CampaignNameTaken(
                f"A campaign named {locked.name!r} already exists.", field="name"
            ) from None
        _snapshot(locked, actor)
        # Not the graph: a message action's text may name anyone.
        summary = {
            "name": locked.name,
            "version": locked.version,
            "renamed": locked.name != before,
            "graph_changed": locked.graph != before_graph,
        }
        audit.record(actor, "campaign.updated", "campaign", locked.pk, summary)
    return locked


def _set_status(campaign: Campaign, status: str, actor: Actor) -> Campaign:
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
        if locked is None:
            raise CampaignNotFound(f"Campaign {campaign.pk} does not exist.")
        before = locked.status
        now = timezone.now()
        if status == CampaignStatus.ACTIVE:
            graphs.check_references(graphs.validate(locked.graph))
            if locked.status != CampaignStatus.SUSPENDED:
                locked.fired_at = now
        if status == CampaignStatus.INACTIVE:
            Token.objects.filter(campaign=locked).delete()
        locked.status = status
        locked.updated_by = actor.user
        locked.updated_at = now
        locked.save(update_fields=["status", "fired_at", "updated_by", "updated_at"])
        if status != before:  # activating an active campaign changes nothing: no entry
            summary = {"name": locked.name, "status": status, "previous_status": before}
            audit.record(actor, _STATUS_ACTIONS[status], "campaign", locked.pk, summary)
    return locked


_STATUS_ACTIONS: dict[str, str] = {
    CampaignStatus.ACTIVE: "campaign.activated",
    CampaignStatus.SUSPENDED: "campaign.suspended",
    CampaignStatus.INACTIVE: "campaign.deactivated",
}


def activate_campaign(campaign: Campaign, *, actor: Actor) -> Campaign:
    """Start (or resume) the campaign. Refused with GraphError if the graph is no longer valid.
    Idempotent."""
    return _set_status(campaign, CampaignStatus.ACTIVE, actor)


def suspend_campaign(campaign: Campaign, *, actor: Actor) -> Campaign:
    """Pause: nothing enters or moves; waiting customers stay until it is activated again."""
    return _set_status(campaign, CampaignStatus.SUSPENDED, actor)


def deactivate_campaign(campaign: Campaign, *, actor: Actor) -> Campaign:
    """Stop: nothing enters or moves, and waiting customers leave the campaign."""
    return _set_status(campaign, CampaignStatus.INACTIVE, actor)


def delete_campaign(campaign: Campaign, *, actor: Actor) -> None:
    """Delete the campaign and its history of entries and steps. The audience operations its
    steps made stay in the audiences' history (and undoable)."""
    with transaction.atomic():
        if Campaign.objects.filter(pk=campaign.pk).delete()[0]:
            summary = {"name": campaign.name}
            audit.record(actor, "campaign.deleted", "campaign", campaign.pk, summary)


# --- Erasure (docs/privacy.md) ----------------------------------------------------------------

ERASED_NOTE = "Not sent: the customer's personal data was erased."


def erase_customer(
    customer: ErasedCustomer, prepared: object = None, *, actor: Actor
) -> dict[str, int]:
    """The campaigns' part of erasing a customer (registered as an eraser in ``apps.py``; runs
    inside ``customers.services.erase_customer``'s transaction).

    The customer's own trail goes: their entries, the tokens they wait on (so no step runs for
    them again), the steps they passed, their rows of *entered a segment* triggers. Their
    messages in the outbox stay as a record that a message was written (campaign, step, channel,
    time, status) with the address, subject, body and any error text blanked and the link to the
    customer removed; a message not yet sent is marked failed instead. The campaigns' figures
    (batches, step runs and their counts) are aggregates and stay as they are. Idempotent."""
    sc_id = customer.sc_id
    messages = OutboxMessage.objects.filter(customer_id=sc_id)
    unsent = messages.filter(status__in=[OutboxStatus.PENDING, OutboxStatus.SENDING]).update(
        status=OutboxStatus.FAILED
    )
    masked = messages.update(customer=None, to="", subject="", body="", error=ERASED_NOTE)
    return {
        "entries_deleted": Entry.objects.filter(customer_id=sc_id).delete()[0],
        "tokens_deleted": Token.objects.filter(customer_id=sc_id).delete()[0],
        "passages_deleted": Passage.objects.filter(customer_id=sc_id).delete()[0],
        "segment_watch_deleted": SegmentWatch.objects.filter(customer_id=sc_id).delete()[0],
        "messages_masked": masked,
        "messages_not_sent": unsent,
    }
