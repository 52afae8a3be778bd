"""Pages of Communications → Campaigns: the list, the editor (new and edit), the campaign page,
its status actions (activate, suspend, deactivate) and delete.

Thin entry points: parse the request, check the role, call ONE service, render. The editor
(``static/campaigns/editor.js`` on the vendored Drawflow canvas) saves through the REST API
(``POST /api/v1/campaigns``, ``PATCH /api/v1/campaigns/<id>``) with the session and the CSRF
token; what it needs — the kinds' parameter schemas, the graph, the counts per node, the names
of audiences and segments, the segment field catalogue for the filter's rule builder — is
rendered into the page as JSON. Without JavaScript the same page saves by a form POST with the
graph as JSON text. Analysts read every page but change nothing (403 on every write view), as
for segments.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from functools import wraps
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe
from django_htmx.http import HttpResponseClientRedirect

from tagbase.accounts.actors import Actor
from tagbase.audiences.models import Audience
from tagbase.audiences.queries import audience_list
from tagbase.campaigns import queries, services
from tagbase.campaigns.actions import ACTIONS
from tagbase.campaigns.forms import CampaignForm, CampaignListForm
from tagbase.campaigns.graph import KINDS, Graph
from tagbase.campaigns.models import Campaign, CampaignStatus, Token
from tagbase.campaigns.nodes import GraphError
from tagbase.campaigns.triggers import TRIGGERS
from tagbase.segments.catalogue import catalogue_json
from tagbase.segments.models import Segment

CHART_DAYS = 30
CHART_HEIGHT = 120  # px of the tallest bar in the entries chart
CHART_BAR = 16  # px per day, bar and gap
RUNS_SHOWN = 20


def writer_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Log in first (anonymous users are redirected), then refuse read-only roles with 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.can_write:  # type: ignore[union-attr]
            raise PermissionDenied("Your role may not change campaigns.")
        return view(request, *args, **kwargs)

    return login_required(wrapped)


def _targets(request: HttpRequest, element_id: str) -> bool:
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.history_restore_request and htmx.target == element_id  # type: ignore[union-attr]


def _template(request: HttpRequest, name: str, parts: dict[str, str]) -> str:
    """The page's template, or one of its partials when htmx asked for that part of the page."""
    for target, part in parts.items():
        if _targets(request, target):
            return f"{name}#{part}"
    return name


def _go(request: HttpRequest, url: str) -> HttpResponse:
    """Redirect; an htmx request (a form in a dialog) gets a full-page client redirect."""
    if getattr(request, "htmx", None):
        return HttpResponseClientRedirect(url)
    return redirect(url)


def _actor(request: HttpRequest) -> Actor:
    return Actor.of_user(request.user)  # type: ignore[arg-type]


def _detail_url(campaign: Campaign) -> str:
    return reverse("campaigns:campaign_detail", args=[campaign.pk])


def _graph_error(exc: GraphError) -> dict[str, str]:
    """What the pages show of a graph error: the node it names (marked on the canvas), the
    parameter, the bare message and the full sentence."""
    return {
        "node": exc.node or "",
        "field": exc.field or "",
        "message": exc.detail,
        "text": exc.message,
    }


# --- The list ----------------------------------------------------------------------------------


@require_safe
@login_required
def campaign_list(request: HttpRequest) -> HttpResponse:
    q, only_active = CampaignListForm(request.GET).query()
    found = queries.campaign_list(q, only_active=only_active)
    page = Paginator(found, settings.TAGBASE_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = list(page.object_list)
    labels = _kind_labels()
    for campaign in page.object_list:
        campaign.trigger_label = labels.get(campaign.trigger_kind, campaign.trigger_kind)  # type: ignore[attr-defined]
    template = _template(request, "campaigns/campaign_list.html", {"results": "results"})
    context = {"page_obj": page, "q": q, "only_active": only_active}
    return render(request, template, context)


def _kind_labels() -> dict[str, str]:
    return {kind: cls.label for kind, cls in KINDS.items()}


# --- The editor --------------------------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def campaign_create(request: HttpRequest) -> HttpResponse:
    return _editor(request, None)


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def campaign_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _editor(request, get_object_or_404(Campaign, pk=pk))


def _editor(request: HttpRequest, campaign: Campaign | None) -> HttpResponse:
    """New and edit share one page. With JavaScript the editor saves through the API and this
    view only renders; a POST is the save without JavaScript (the graph as JSON text)."""
    initial: dict[str, Any] = (
        {
            "name": campaign.name,
            "description": campaign.description,
            "reentry_days": campaign.reentry_days,
            "graph": campaign.graph,
        }
        if campaign
        else {"graph": {"nodes": [], "edges": []}, "reentry_days": None}
    )
    form = CampaignForm(request.POST if request.method == "POST" else None, initial=initial)
    context: dict[str, Any] = {"campaign": campaign, "form": form, "graph_error": None}
    graph: Any = campaign.graph if campaign else initial["graph"]
    if request.method == "POST" and form.is_valid():
        if isinstance(form.cleaned_data["graph"], dict):
            graph = form.cleaned_data["graph"]  # the canvas shows what was sent, errors and all
        saved = _save(request, form, campaign, context)
        if saved is not None:
            return redirect(_detail_url(saved))
    context.update(_editor_data(campaign, graph, mode="edit"))
    return render(request, "campaigns/campaign_editor.html", context)


def _save(
    request: HttpRequest, form: CampaignForm, campaign: Campaign | None, context: dict[str, Any]
) -> Campaign | None:
    data = form.cleaned_data
    try:
        if campaign is None:
            saved = services.create_campaign(
                data["name"],
                data["graph"],
                actor=_actor(request),
                description=data["description"],
                reentry_days=data["reentry_days"],
            )
        else:
            saved = services.update_campaign(
                campaign,
                actor=_actor(request),
                name=data["name"],
                graph=data["graph"],
                description=data["description"],
                reentry_days=data["reentry_days"],
            )
    except GraphError as exc:
        context["graph_error"] = _graph_error(exc)
        form.add_error("graph", exc.message)
        return None
    except services.CampaignError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        return None
    messages.success(request, f"Campaign “{saved.name}” saved (version {saved.version}).")
    return saved


def _editor_data(campaign: Campaign | None, graph: dict[str, Any], *, mode: str) -> dict[str, Any]:
    """What the canvas needs, rendered as JSON into the page (``json_script``)."""
    audiences = [{"id": pk, "name": name} for pk, name in audience_list().values_list("pk", "name")]
    segments = [
        {"id": pk, "name": name}
        for pk, name in Segment.objects.order_by("name_key").values_list("pk", "name")
    ]
    config: dict[str, Any] = {
        "mode": mode,
        "campaign": campaign.pk if campaign else None,
        "timeZone": settings.TIME_ZONE,
        "createUrl": reverse("api:campaign_create"),
        "updateUrl": (
            reverse("api:campaign_update", kwargs={"campaign_id": campaign.pk}) if campaign else ""
        ),
        "detailUrl": reverse("campaigns:campaign_detail", args=[0]),
        "countUrl": reverse("segments:segment_count"),
    }
    return {
        "editor_config": config,
        "kinds": {
            "triggers": [k.schema() for k in TRIGGERS.values()],
            "actions": [k.schema() for k in ACTIONS.values()],
        },
        "graph": graph,
        "stats": queries.node_stats(campaign.pk) if campaign else {},
        "audience_names": audiences,
        "segment_names": segments,
        "catalogue": catalogue_json() if mode == "edit" else [],
    }


# --- One campaign ------------------------------------------------------------------------------


@require_safe
@login_required
def campaign_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return _detail(request, pk)


def _detail(
    request: HttpRequest, pk: int, activation_error: dict[str, str] | None = None
) -> HttpResponse:
    campaign = get_object_or_404(queries.campaign_list(), pk=pk)
    stats = queries.node_stats(campaign.pk)
    names = _audience_names(campaign.graph)
    context: dict[str, Any] = {
        "campaign": campaign,
        "activation_error": activation_error,
        "trigger_label": _kind_labels().get(campaign.trigger_kind, campaign.trigger_kind),
        "steps": _steps(campaign.graph, stats, names),
        "runs": _runs(campaign, names),
        "chart": _chart(queries.entries_per_day(campaign.pk, days=CHART_DAYS)),
        "waiting": _waiting(campaign),
    }
    context.update(_editor_data(campaign, campaign.graph, mode="view"))
    context["stats"] = stats
    return render(request, "campaigns/campaign_detail.html", context)


def _audience_names(graph: dict[str, Any]) -> dict[int, str]:
    ids = {
        n["params"]["audience"]
        for n in graph.get("nodes", [])
        if n.get("kind") == "audience" and isinstance(n.get("params", {}).get("audience"), int)
    }
    return dict(Audience.objects.filter(pk__in=ids).values_list("pk", "name"))


def _steps(
    graph: dict[str, Any], stats: dict[str, dict[str, Any]], names: dict[int, str]
) -> list[dict[str, Any]]:
    """One row per node, in the order customers pass them, with its counts."""
    nodes = {n["id"]: n for n in graph.get("nodes", [])}
    try:
        order = Graph(graph).order() if nodes else []
    except (KeyError, StopIteration):  # a graph saved before a kind was removed: keep its order
        order = list(nodes)
    rows = []
    for node_id in order:
        node = nodes[node_id]
        kind = KINDS.get(node["kind"])
        ports = list(kind.output_ports(node.get("params") or {})) if kind else []
        item = stats.get(node_id, {})
        out = item.get("out", {})
        rows.append(
            {
                "id": node_id,
                "title": queries.describe_node(node, names),
                "kind": kind.label if kind else node["kind"],
                "count_in": item.get("in", 0),
                "ports": [(port, out.get(port, 0)) for port in ports],
                "stopped": item.get("stopped", 0),
                "runs": item.get("runs", 0),
                "errors": item.get("errors", 0),
                "last_error": item.get("last_error", ""),
            }
        )
    return rows


def _runs(campaign: Campaign, names: dict[int, str]) -> list[dict[str, Any]]:
    nodes = {n["id"]: n for n in campaign.graph.get("nodes", [])}
    runs = queries.recent_batches(campaign.pk, limit=RUNS_SHOWN)
    for run in runs:
        run["rows"] = [
            {
                "step": step,
                "title": queries.describe_node(nodes.get(step.node, {"kind": step.kind}), names),
                "out": _in_port_order(nodes.get(step.node), step.kind, step.counts_out or {}),
            }
            for step in run["steps"]
        ]
    return runs


def _in_port_order(node: dict[str, Any] | None, kind: str, counts: dict[str, int]) -> list[Any]:
    """Counts per port in the order of the kind's ports (PostgreSQL's jsonb keeps no order)."""
    known = KINDS.get(kind)
    ports = list(known.output_ports((node or {}).get("params") or {})) if known else []
    ordered = [p for p in ports if p in counts] + sorted(p for p in counts if p not in ports)
    return [(port, counts[port]) for port in ordered]


def _waiting(campaign: Campaign) -> int:
    """Customers waiting at a step now (they leave the campaign when it is deactivated)."""
    return Token.objects.filter(campaign=campaign).values("customer").distinct().count()


def _chart(days: list[tuple[date, int]]) -> dict[str, Any]:
    """Entries per day as bars of an SVG drawn by the template (no script, no inline style):
    every bar's place and height in pixels, the largest day, and three date labels."""
    top = max((n for _, n in days), default=0)
    bars: list[dict[str, Any]] = []
    for index, (day, n) in enumerate(days):
        height = round(n * CHART_HEIGHT / top) if top else 0
        if n and height < 2:
            height = 2  # a day with entries stays visible next to a very large one
        bars.append(
            {
                "day": day,
                "n": n,
                "x": index * CHART_BAR,
                "y": CHART_HEIGHT - height,
                "height": height,
                "width": CHART_BAR - 4,
            }
        )
    middle = len(days) // 2
    return {
        "bars": bars,
        "top": top,
        "total": sum(n for _, n in days),
        "width": len(days) * CHART_BAR,
        "height": CHART_HEIGHT,
        "labels": [
            {"x": bars[i]["x"] + (CHART_BAR - 4) / 2, "day": bars[i]["day"]}
            for i in sorted({0, middle, len(days) - 1})
        ]
        if days
        else [],
    }


# --- Status ------------------------------------------------------------------------------------


@require_POST
@writer_required
def campaign_activate(request: HttpRequest, pk: int) -> HttpResponse:
    """Activate or resume. A graph that is no longer valid (an audience deleted since) is
    refused: the page is shown again with the error and the node marked on the canvas."""
    campaign = get_object_or_404(Campaign, pk=pk)
    resuming = campaign.status == CampaignStatus.SUSPENDED
    try:
        services.activate_campaign(campaign, actor=_actor(request))
    except GraphError as exc:
        return _detail(request, pk, activation_error=_graph_error(exc))
    except services.CampaignError as exc:
        messages.error(request, exc.message)
    else:
        verb = "resumed" if resuming else "activated"
        messages.success(request, f"Campaign “{campaign.name}” {verb}.")
    return _go(request, _detail_url(campaign))


@require_POST
@writer_required
def campaign_suspend(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    try:
        services.suspend_campaign(campaign, actor=_actor(request))
    except services.CampaignError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"Campaign “{campaign.name}” suspended: waiting customers stay where they are."
        )
    return _go(request, _detail_url(campaign))


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def campaign_deactivate(request: HttpRequest, pk: int) -> HttpResponse:
    """A confirmation first (GET): waiting customers leave the campaign."""
    campaign = get_object_or_404(Campaign, pk=pk)
    if request.method == "POST":
        try:
            services.deactivate_campaign(campaign, actor=_actor(request))
        except services.CampaignError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Campaign “{campaign.name}” deactivated.")
        return _go(request, _detail_url(campaign))
    context = {"campaign": campaign, "waiting": _waiting(campaign)}
    template = _template(request, "campaigns/campaign_deactivate.html", {"modal": "dialog"})
    return render(request, template, context)


@require_http_methods(["GET", "HEAD", "POST"])
@writer_required
def campaign_delete(request: HttpRequest, pk: int) -> HttpResponse:
    campaign = get_object_or_404(Campaign, pk=pk)
    if request.method == "POST":
        try:
            services.delete_campaign(campaign, actor=_actor(request))
        except services.CampaignError as exc:
            messages.error(request, exc.message)
            return _go(request, _detail_url(campaign))
        messages.success(request, f"Campaign “{campaign.name}” deleted.")
        return _go(request, reverse("campaigns:campaign_list"))
    context = {"campaign": campaign, "waiting": _waiting(campaign)}
    template = _template(request, "campaigns/campaign_delete.html", {"modal": "dialog"})
    return render(request, template, context)
