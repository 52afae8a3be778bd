"""REST endpoints for campaigns (docs/api.md "Campaigns"; the graph and the engine in
docs/campaigns.md).

Handlers are thin: parse (the schemas), permission (`tagbase.accounts.auth`: the method decides
the scope), one service or query call, the response schema. Errors are raised as exceptions
(``CampaignError``, ``GraphError``) and rendered by `tagbase.api` as `{"error": {...}}`; a graph
error also carries ``node``, the id of the node at fault, so the editor can mark it.

Who may do what: every GET needs `read` or any session; POST, PATCH and DELETE need `write`, or
the session of a role that may write (an analyst's is refused).

Routes are declared in URL-matching order: the fixed path `kinds` comes before
`/{campaign_id}`.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from ninja import Path, Query, Router, Status

from tagbase.accounts.auth import actor_of, error_responses
from tagbase.audiences.schemas import SearchText
from tagbase.campaigns import queries, services
from tagbase.campaigns.actions import ACTIONS
from tagbase.campaigns.models import Batch, Campaign, CampaignStatus, CampaignVersion, StepRun
from tagbase.campaigns.schemas import (
    MAX_ID,
    CampaignCreateIn,
    CampaignOut,
    CampaignPage,
    CampaignRunList,
    CampaignStatsOut,
    CampaignUpdateIn,
    CampaignVersionPage,
    NodeKindsOut,
)
from tagbase.campaigns.triggers import TRIGGERS

router = Router()  # mounted at /campaigns

MAX_PAGE = 1000
MAX_VERSIONS_PAGE = 100  # each version carries its whole graph
MAX_RUNS = 100
MAX_DAYS = 366
MAX_OFFSET = 10**9  # keeps OFFSET + LIMIT inside a BIGINT


def _id() -> int:
    return Path(..., ge=1, le=MAX_ID, description="Campaign id")  # type: ignore[no-any-return]


def _limit(default: int, maximum: int) -> int:
    return Query(default, ge=1, le=maximum, description=f"1 to {maximum}")  # type: ignore[no-any-return]


# --- Fixed paths ------------------------------------------------------------------------------


@router.get("/kinds", response={200: NodeKindsOut, **error_responses()})
def campaign_kinds(request: HttpRequest) -> dict[str, Any]:
    """The trigger and action kinds a graph may use, each with its parameters (type, required,
    choices, range) and output ports: what the editor's palette and side panel show."""
    return {
        "triggers": [kind.schema() for kind in TRIGGERS.values()],
        "actions": [kind.schema() for kind in ACTIONS.values()],
    }


# --- Campaigns --------------------------------------------------------------------------------


@router.get("", response={200: CampaignPage, **error_responses()})
def campaign_list(
    request: HttpRequest,
    q: SearchText = "",
    status: CampaignStatus | None = Query(None, description="Only campaigns in this status"),  # noqa: B008
    limit: int = _limit(50, MAX_PAGE),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> dict[str, Any]:
    """Campaigns by name with the number of customers who entered each."""
    found = queries.campaign_list(q)
    if status is not None:
        found = found.filter(status=status)
    return {
        "items": [campaign_row(c) for c in found[offset : offset + limit]],
        "count": found.count(),
        "limit": limit,
        "offset": offset,
    }


@router.post("", response={201: CampaignOut, **error_responses(400, 409, 413)}, by_alias=True)
def campaign_create(request: HttpRequest, payload: CampaignCreateIn) -> Status[dict[str, Any]]:
    """Save a new campaign (not active, version 1). 409 when the name is taken; 422 with `node`
    and `field` when the graph is invalid. Audiences named in `new_audience` are created."""
    campaign = services.create_campaign(
        payload.name,
        payload.graph,
        actor=actor_of(request),
        description=payload.description,
        reentry_days=payload.reentry_days,
    )
    return Status(201, campaign_out(campaign.pk))


@router.get("/{campaign_id}", response={200: CampaignOut, **error_responses(404)}, by_alias=True)
def campaign_detail(request: HttpRequest, campaign_id: int = _id()) -> dict[str, Any]:
    """The campaign with its graph and the counts per node (`stats`)."""
    return campaign_out(campaign_id)


@router.patch(
    "/{campaign_id}",
    response={200: CampaignOut, **error_responses(400, 404, 409, 413)},
    by_alias=True,
)
def campaign_update(
    request: HttpRequest, payload: CampaignUpdateIn, campaign_id: int = _id()
) -> dict[str, Any]:
    """Change the name, description, re-entry interval and/or graph. Every save is a new
    version; customers waiting at a node stay there (docs/campaigns.md)."""
    changes: dict[str, Any] = {"name": payload.name, "description": payload.description}
    if payload.graph is not None:
        changes["graph"] = payload.graph
    if "reentry_days" in payload.model_fields_set:
        changes["reentry_days"] = payload.reentry_days
    services.update_campaign(_campaign(campaign_id), actor=actor_of(request), **changes)
    return campaign_out(campaign_id)


@router.delete("/{campaign_id}", response={204: None, **error_responses(404)})
def campaign_delete(request: HttpRequest, campaign_id: int = _id()) -> Status[None]:
    """Delete the campaign with its entries and step history. The audience operations its
    steps made stay in the audiences' history."""
    services.delete_campaign(_campaign(campaign_id), actor=actor_of(request))
    return Status(204, None)


@router.post(
    "/{campaign_id}/activate", response={200: CampaignOut, **error_responses(404)}, by_alias=True
)
def campaign_activate(request: HttpRequest, campaign_id: int = _id()) -> dict[str, Any]:
    """Start or resume the campaign. The graph is checked again (422 with `node` when, say, an
    audience it names was deleted). Idempotent."""
    services.activate_campaign(_campaign(campaign_id), actor=actor_of(request))
    return campaign_out(campaign_id)


@router.post(
    "/{campaign_id}/suspend", response={200: CampaignOut, **error_responses(404)}, by_alias=True
)
def campaign_suspend(request: HttpRequest, campaign_id: int = _id()) -> dict[str, Any]:
    """Pause: no one enters or moves on; waiting customers stay until it is activated."""
    services.suspend_campaign(_campaign(campaign_id), actor=actor_of(request))
    return campaign_out(campaign_id)


@router.post(
    "/{campaign_id}/deactivate",
    response={200: CampaignOut, **error_responses(404)},
    by_alias=True,
)
def campaign_deactivate(request: HttpRequest, campaign_id: int = _id()) -> dict[str, Any]:
    """Stop: no one enters or moves on, and waiting customers leave the campaign."""
    services.deactivate_campaign(_campaign(campaign_id), actor=actor_of(request))
    return campaign_out(campaign_id)


# --- Runs, statistics, versions ---------------------------------------------------------------


@router.get("/{campaign_id}/runs", response={200: CampaignRunList, **error_responses(404)})
def campaign_runs(
    request: HttpRequest, campaign_id: int = _id(), limit: int = _limit(20, MAX_RUNS)
) -> dict[str, Any]:
    """The latest trigger firings (batches), newest first, each with its step runs."""
    campaign = _campaign(campaign_id)
    return {
        "items": [
            _run(row["batch"], row["steps"])
            for row in queries.recent_batches(campaign.pk, limit=limit)
        ]
    }


@router.get(
    "/{campaign_id}/stats", response={200: CampaignStatsOut, **error_responses(404)}, by_alias=True
)
def campaign_stats(
    request: HttpRequest,
    campaign_id: int = _id(),
    days: int = Query(30, ge=1, le=MAX_DAYS, description=f"1 to {MAX_DAYS}"),
) -> dict[str, Any]:
    """Counts per node, and customers who entered on each of the last `days` days."""
    campaign = _campaign(campaign_id)
    return {
        "nodes": queries.node_stats(campaign.pk),
        "entries_per_day": [
            {"date": day, "entered": n}
            for day, n in queries.entries_per_day(campaign.pk, days=days)
        ],
    }


@router.get("/{campaign_id}/versions", response={200: CampaignVersionPage, **error_responses(404)})
def campaign_versions(
    request: HttpRequest,
    campaign_id: int = _id(),
    limit: int = _limit(20, MAX_VERSIONS_PAGE),
    offset: int = Query(0, ge=0, le=MAX_OFFSET),
) -> dict[str, Any]:
    """The saved versions, newest first, each with its graph as it was saved."""
    campaign = _campaign(campaign_id)
    versions = (
        CampaignVersion.objects.filter(campaign=campaign)
        .select_related("saved_by")
        .order_by("-version")
    )
    return {
        "items": [_version(v) for v in versions[offset : offset + limit]],
        "count": versions.count(),
        "limit": limit,
        "offset": offset,
    }


# --- Helpers ----------------------------------------------------------------------------------


def _campaign(campaign_id: int) -> Campaign:
    campaign = Campaign.objects.filter(pk=campaign_id).first()
    if campaign is None:
        raise services.CampaignNotFound(f"Campaign {campaign_id} does not exist.")
    return campaign


def _username(user: Any) -> str | None:
    return user.get_username() if user is not None else None


def campaign_row(campaign: Campaign) -> dict[str, Any]:
    """A campaign of ``queries.campaign_list`` (annotated with ``entered``) as lists give it;
    `tagbase campaign list --json` prints the same."""
    return {
        "id": campaign.pk,
        "name": campaign.name,
        "description": campaign.description,
        "status": campaign.status,
        "reentry_days": campaign.reentry_days,
        "trigger_kind": campaign.trigger_kind,
        "version": campaign.version,
        "entered": campaign.entered,  # type: ignore[attr-defined]
        "created_at": campaign.created_at,
        "created_by": _username(campaign.created_by),
        "updated_at": campaign.updated_at,
        "updated_by": _username(campaign.updated_by),
    }


def campaign_out(campaign_id: int) -> dict[str, Any]:
    """The campaign as every single-campaign answer (and `tagbase campaign show --json`) gives
    it: the list row, the graph and the counts per node."""
    campaign = queries.campaign_list().filter(pk=campaign_id).first()
    if campaign is None:
        raise services.CampaignNotFound(f"Campaign {campaign_id} does not exist.")
    return {
        **campaign_row(campaign),
        "graph": campaign.graph,
        "stats": queries.node_stats(campaign.pk),
    }


def _run(batch: Batch, steps: list[StepRun]) -> dict[str, Any]:
    return {
        "id": batch.pk,
        "created_at": batch.created_at,
        "trigger_kind": batch.trigger_kind,
        "version": batch.version,
        "requested": batch.requested,
        "entered": batch.entered,
        "context": batch.context or {},
        "steps": [
            {
                "node": s.node,
                "kind": s.kind,
                "count_in": s.count_in,
                "counts_out": s.counts_out or {},
                "error": s.error,
                "started_at": s.started_at,
                "finished_at": s.finished_at,
            }
            for s in steps
        ],
    }


def _version(version: CampaignVersion) -> dict[str, Any]:
    return {
        "version": version.version,
        "name": version.name,
        "reentry_days": version.reentry_days,
        "graph": version.graph,
        "saved_at": version.saved_at,
        "saved_by": _username(version.saved_by),
    }
