"""*Filter customers*: split by a segment rule (``rules``, the tree of docs/segments.md) or by a
saved segment's current rule (``segment``) into ``positive`` and ``negative``. One query per
step — the rule's SQL restricted to the step's ids, passed as one list parameter — evaluated at
the step's time."""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models.expressions import RawSQL

from tagbase.campaigns.actions import Action, ActionError, Ports, StepContext
from tagbase.campaigns.nodes import GraphError, Param
from tagbase.customers.models import Customer
from tagbase.lib.sqlbits import list_param, rows_of
from tagbase.segments.compiler import condition_q
from tagbase.segments.models import Segment
from tagbase.segments.rules import RuleError, to_json, validate


def rule_of(node_id: str, params: dict[str, Any]) -> dict[str, Any]:
    """The cleaned rule tree a node's ``rules`` or ``segment`` names."""
    if "segment" in params:
        rules = Segment.objects.filter(pk=params["segment"]).values_list("rules", flat=True).first()
        if rules is None:
            raise ActionError(f"segment {params['segment']} no longer exists")
        return validate(rules)
    return validate(params["rules"])


def check_rule_or_segment(node_id: str, params: dict[str, Any]) -> None:
    if ("rules" in params) == ("segment" in params):
        raise GraphError(
            "give a rule or a saved segment (one of the two)", node=node_id, field="rules"
        )


def matching(ids: list[int], tree: dict[str, Any], ctx: StepContext) -> set[int]:
    """The customers among ``ids`` the rule selects at the step's time (one query)."""
    if not ids:
        return set()
    # The SQL text is a code constant; the ids are one parameter.
    step_ids = RawSQL(  # noqa: S611  # nosec B611  # constant SQL, ids as one parameter
        f"SELECT j.value FROM {rows_of(connection, 'j')}", [list_param(connection, ids)]
    )
    chosen = Customer.objects.filter(condition_q(tree, now=ctx.now), sc_id__in=step_ids)
    return set(chosen.order_by().values_list("sc_id", flat=True))


class FilterCustomers(Action):
    kind = "filter"
    label = "Filter customers"
    params = (
        Param("rules", "rules", required=False, label="Rule"),
        Param("segment", "segment", required=False, label="Saved segment"),
    )
    ports = ("positive", "negative")

    @classmethod
    def check(cls, node_id: str, params: dict[str, Any]) -> None:
        check_rule_or_segment(node_id, params)
        if "rules" in params:
            try:
                params["rules"] = to_json(validate(params["rules"]))
            except RuleError as exc:
                raise GraphError(exc.message, node=node_id, field="rules") from None

    @classmethod
    def execute(cls, ids: list[int], ctx: StepContext) -> Ports:
        positive = matching(ids, rule_of(ctx.node, ctx.params), ctx)
        return {
            "positive": [i for i in ids if i in positive],
            "negative": [i for i in ids if i not in positive],
        }
