"""*Audience action*: add the customers to an audience, or remove them, through the one
membership write path — one undoable ``campaign`` operation per step, whose ``source_ref`` names
the campaign and the node. Every customer is passed on (``out``). A new audience named in
``new_audience`` is created when the campaign is saved (``services``), which then stores its id.
"""

from __future__ import annotations

from typing import Any

from tagbase.audiences.models import OperationKind
from tagbase.audiences.services import (
    AudienceNotFound,
    add_customers_to_audience,
    remove_customers_from_audience,
)
from tagbase.campaigns.actions import Action, ActionError, Ports, StepContext
from tagbase.campaigns.nodes import GraphError, Param


class AudienceAction(Action):
    kind = "audience"
    label = "Audience action"
    params = (
        Param("action", "text", choices=("add", "remove"), label="Add or remove"),
        Param("audience", "audience", required=False, label="Audience"),
        Param("new_audience", "text", required=False, label="New audience name"),
    )

    @classmethod
    def check(cls, node_id: str, params: dict[str, Any]) -> None:
        has_new = bool(params.get("new_audience"))
        if ("audience" in params) == has_new:
            raise GraphError(
                "choose an audience or type a new audience name (one of the two)",
                node=node_id,
                field="audience",
            )
        if has_new and params["action"] == "remove":
            raise GraphError(
                "customers can only be removed from an existing audience",
                node=node_id,
                field="new_audience",
            )

    @classmethod
    def execute(cls, ids: list[int], ctx: StepContext) -> Ports:
        change = (
            add_customers_to_audience
            if ctx.params["action"] == "add"
            else remove_customers_from_audience
        )
        try:
            change(
                ctx.params["audience"],
                ids,
                actor=ctx.actor,
                kind=OperationKind.CAMPAIGN,
                source_ref=ctx.source_ref,
            )
        except AudienceNotFound:
            raise ActionError(f"audience {ctx.params['audience']} no longer exists") from None
        return {"out": ids}
