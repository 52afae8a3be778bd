"""Request and response shapes of the campaigns API (docs/api.md "Campaigns"; the graph and the
engine in docs/campaigns.md).

The graph itself is passed through as a JSON object: ``campaigns.graph.validate`` checks it and
names the node and the parameter of a problem (a ``GraphError``, answered as 422 with ``node``
and ``field``), which a pydantic model of nodes whose parameters depend on their kind could not
do as precisely.
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Any

from ninja import Field, Schema
from pydantic import BaseModel, ConfigDict, model_validator

from tagbase.campaigns.models import CampaignStatus

MAX_ID = 2**63 - 1  # largest value of a BIGINT key
MAX_DESCRIPTION_LENGTH = 10_000

GRAPH_DESCRIPTION = (
    "The graph: {nodes: [{id, kind, params, position: {x, y}}], edges: [{from, port, to}]}; "
    "exactly one trigger; see docs/campaigns.md and GET /campaigns/kinds"
)
REENTRY_DESCRIPTION = (
    "Days before a customer may enter again (0 to 36500; 0: any time); null: at most once, ever"
)


class Input(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid")


# --- Campaigns --------------------------------------------------------------------------------


class CampaignCreateIn(Input):
    name: str = Field(description="1-200 characters; unique after trimming and case-folding")
    description: str = Field("", max_length=MAX_DESCRIPTION_LENGTH)
    reentry_days: int | None = Field(None, description=REENTRY_DESCRIPTION)
    graph: dict[str, Any] = Field(description=GRAPH_DESCRIPTION)


class CampaignUpdateIn(Input):
    name: str | None = None
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_LENGTH)
    reentry_days: int | None = Field(
        None, description=REENTRY_DESCRIPTION + "; leave the key out to keep it"
    )
    graph: dict[str, Any] | None = Field(None, description=GRAPH_DESCRIPTION)

    @model_validator(mode="after")
    def _something_to_change(self) -> CampaignUpdateIn:
        # null keeps a field, except reentry_days, where null means "at most once".
        given = [self.name, self.description, self.graph]
        if all(v is None for v in given) and "reentry_days" not in self.model_fields_set:
            raise ValueError("send name, description, reentry_days, graph or several of them")
        return self


class NodeStatsOut(Schema):
    """One node's counts over every step run of the campaign (``queries.node_stats``)."""

    model_config = ConfigDict(populate_by_name=True)

    count_in: int = Field(alias="in", description="Customers who reached the node")
    out: dict[str, int] = Field(description="Customers who left by each output port")
    stopped: int = Field(description="Customers the node stopped (a limit, an error)")
    runs: int = Field(description="Step runs of the node")
    errors: int = Field(description="Step runs that recorded an error")
    last_error: str = Field(description="The latest error, or empty")


class CampaignListItem(Schema):
    id: int
    name: str
    description: str
    status: CampaignStatus = Field(description="active, inactive (not active) or suspended")
    reentry_days: int | None = Field(description=REENTRY_DESCRIPTION)
    trigger_kind: str = Field(description="The kind of the graph's trigger node")
    version: int = Field(description="Increases with every save")
    entered: int = Field(description="Customers let in, over every batch")
    created_at: datetime
    created_by: str | None = Field(description="User name; null for the system or the CLI")
    updated_at: datetime
    updated_by: str | None


class CampaignOut(CampaignListItem):
    graph: dict[str, Any] = Field(description="The graph as saved (cleaned)")
    stats: dict[str, NodeStatsOut] = Field(
        description="Per node id (nodes that never ran are absent): what the canvas shows"
    )


class CampaignPage(Schema):
    items: list[CampaignListItem]
    count: int = Field(description="Campaigns matching the filter, over all pages")
    limit: int
    offset: int


# --- Runs, statistics, versions ---------------------------------------------------------------


class CampaignStepOut(Schema):
    node: str
    kind: str = Field(description="The node's kind; 'removed' when the node left the graph")
    count_in: int
    counts_out: dict[str, int] = Field(description="Customers per output port")
    error: str = Field(description="Why the step stopped its customers, or empty")
    started_at: datetime
    finished_at: datetime | None


class CampaignRunOut(Schema):
    id: int = Field(description="The batch id")
    created_at: datetime
    trigger_kind: str
    version: int = Field(description="The campaign version the batch entered")
    requested: int = Field(description="Customers the trigger offered")
    entered: int = Field(description="Customers let in (the re-entry interval allowed)")
    context: dict[str, Any] = Field(description="What fired the trigger")
    steps: list[CampaignStepOut] = Field(description="The batch's step runs, in the order they ran")


class CampaignRunList(Schema):
    items: list[CampaignRunOut] = Field(description="Newest first")


class CampaignDayOut(Schema):
    date: dt.date
    entered: int


class CampaignStatsOut(Schema):
    nodes: dict[str, NodeStatsOut] = Field(description="As `stats` of the campaign")
    entries_per_day: list[CampaignDayOut] = Field(
        description="Oldest first, days without entries too"
    )


class CampaignVersionOut(Schema):
    version: int
    name: str
    reentry_days: int | None
    graph: dict[str, Any]
    saved_at: datetime
    saved_by: str | None


class CampaignVersionPage(Schema):
    items: list[CampaignVersionOut] = Field(description="Newest first")
    count: int
    limit: int
    offset: int


# --- Kinds ------------------------------------------------------------------------------------


class NodeParamOut(Schema):
    name: str
    type: str = Field(
        description="int, decimal, text, datetime, time, email, int_list, object, audience "
        "(an id), segment (an id) or rules (a segment rule tree)"
    )
    required: bool
    label: str | None = None
    choices: list[str] | None = None
    min: int | None = None
    max: int | None = None
    default: Any = None


class NodeKindOut(Schema):
    kind: str
    label: str
    trigger: bool
    params: list[NodeParamOut]
    ports: list[str] = Field(
        description="Output ports (split: a, b, c… one per variant, as many as percentages)"
    )


class NodeKindsOut(Schema):
    triggers: list[NodeKindOut]
    actions: list[NodeKindOut]
