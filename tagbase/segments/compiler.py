"""Rule trees to queries: members, the five metrics in one aggregate query, and sentences.

Takes trees already cleaned by ``rules.validate``. Every condition becomes a ``Q`` that is never
SQL NULL (see ``catalogue``), groups combine with AND/OR, and ``negate`` is ``~`` — an exact
complement; an empty group is an explicit "everyone" (a negated one "no one"). Within a group,
tests on the customer's own row come before look-ups in related rows. A condition on a saved
segment inlines that segment's own rule (cycles are refused when segments are saved; a cycle
met here anyway matches no one).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db.models import Count, DecimalField, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from tagbase.audiences.models import Audience
from tagbase.customers.models import Customer, CustomerStats
from tagbase.segments.catalogue import FIELDS, OPERATORS, Context
from tagbase.segments.models import Segment
from tagbase.segments.rules import validate

_CENT = Decimal("0.01")
EVERYONE = Q(sc_id__isnull=False)
NOBODY = Q(pk__in=[])
_MONEY = DecimalField(max_digits=20, decimal_places=2)


def _context(now: datetime | None, seen: frozenset[int] = frozenset()) -> Context:
    moment = now or timezone.now()

    def resolve(segment_id: int) -> Q:
        if segment_id in seen:
            return NOBODY
        rules = Segment.objects.filter(pk=segment_id).values_list("rules", flat=True).first()
        if rules is None:
            return NOBODY
        return _tree_q(validate(rules), _context(moment, seen | {segment_id}))

    return Context(now=moment, resolve_segment=resolve)


def _cost(node: dict[str, Any]) -> int:
    """0: a test on the customer's own row; 1: a look-up in related rows; 2: a group or saved
    segment (any number of look-ups)."""
    if "field" not in node or node["field"] == "segment":
        return 2
    return 0 if FIELDS[node["field"]].group == "Customer" else 1


def _tree_q(tree: dict[str, Any], ctx: Context) -> Q:
    # Cheap tests first: SQLite evaluates AND / OR left to right and stops early, so a look-up
    # in related rows runs only for the customers their own columns let through (PostgreSQL
    # orders the tests by its cost estimates anyway).
    parts = []
    for node in sorted(tree["rules"], key=_cost):
        if "field" in node:
            parts.append(FIELDS[node["field"]].build(ctx, node))
        else:
            parts.append(_tree_q(node, ctx))
    if not parts:
        # An empty group matches everyone, at any depth: an explicit always-true condition,
        # since Django drops an empty Q() from & and | (and ~Q() stays empty).
        return NOBODY if tree.get("negate") else EVERYONE
    q = parts[0]
    for part in parts[1:]:
        q = (q & part) if tree["op"] == "and" else (q | part)
    return ~q if tree.get("negate") else q


def condition_q(tree: dict[str, Any], *, now: datetime | None = None) -> Q:
    return _tree_q(tree, _context(now))


def members(tree: dict[str, Any], *, now: datetime | None = None) -> QuerySet[Customer]:
    """The customers matching a cleaned rule tree, as a queryset (not evaluated)."""
    return Customer.objects.filter(condition_q(tree, now=now))


def member_ids_sql(tree: dict[str, Any], *, now: datetime | None = None) -> tuple[str, tuple]:
    """``SELECT … AS customer_id`` of the members, for ``audiences.services.CustomerSelection``."""
    qs = members(tree, now=now).order_by().values_list("sc_id", flat=True)
    sql, params = qs.query.sql_with_params()
    return f"SELECT sc_id AS customer_id FROM ({sql}) AS segment_members", tuple(params)


@dataclass(frozen=True)
class Metrics:
    customers: int
    percent_customers: Decimal
    percent_revenue: Decimal
    average_receipt: Decimal | None
    total_value: Decimal


def _percent(part: Decimal, whole: Decimal) -> Decimal:
    if not whole:
        return Decimal("0.00")
    return (Decimal(part) * 100 / Decimal(whole)).quantize(_CENT, rounding=ROUND_HALF_UP)


def metrics(tree: dict[str, Any], *, now: datetime | None = None) -> Metrics:
    """The five metrics: the members' figures in one aggregate query, and the whole base's."""
    q = condition_q(tree, now=now)
    zero = Value(Decimal("0"), output_field=_MONEY)
    picked = Customer.objects.filter(q).aggregate(
        n=Count("sc_id"),
        receipts=Coalesce(Sum("stats__receipt_count"), 0),
        total=Coalesce(Sum("stats__total_amount", output_field=_MONEY), zero),
    )
    base = CustomerStats.objects.aggregate(
        total=Coalesce(Sum("total_amount", output_field=_MONEY), zero)
    )
    all_customers = Customer.objects.count()
    total = Decimal(picked["total"]).quantize(_CENT)
    receipts = int(picked["receipts"])
    average = (total / receipts).quantize(_CENT, rounding=ROUND_HALF_UP) if receipts else None
    return Metrics(
        customers=int(picked["n"]),
        percent_customers=_percent(Decimal(picked["n"]), Decimal(all_customers)),
        percent_revenue=_percent(total, Decimal(base["total"])),
        average_receipt=average,
        total_value=total,
    )


# --- Sentences ------------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return f"“{value}”"
    return str(value)


def describe(tree: dict[str, Any], names: dict[str, dict[int, str]] | None = None) -> str:
    """A human sentence for a cleaned tree ("Customer. Age greater than or equal to 30 and …")."""
    names = names if names is not None else reference_names(tree)
    return _describe(tree, names, top=True) or "All customers"


def _describe(tree: dict[str, Any], names: dict[str, dict[int, str]], *, top: bool) -> str:
    parts = []
    for node in tree["rules"]:
        if "field" in node:
            parts.append(describe_condition(node, names))
        else:
            inner = _describe(node, names, top=False)
            parts.append(inner)
    joiner = " and " if tree["op"] == "and" else " or "
    text = joiner.join(parts) if parts else "all customers"
    if tree.get("negate"):
        return f"not ({text})"
    if not top and len(parts) > 1:
        return f"({text})"
    return text


def describe_condition(cond: dict[str, Any], names: dict[str, dict[int, str]]) -> str:
    f = FIELDS[cond["field"]]
    operator = OPERATORS[f.type][cond["operator"]]
    subject = f"{f.group}. {f.label}"
    if "key" in cond:
        subject = f"{f.group}. Attribute “{cond['key']}”"
    if "event" in cond:
        window = f" in the last {cond['days']} days" if "days" in cond else ""
        subject = f"Event “{cond['event']}”" + (
            f" times{window}" if f.id == "events.count" else ": days since last"
        )
    elif "days" in cond:
        subject += f" (last {cond['days']} days)"
    value: Any = cond.get("value")
    label = dict(f.choices)
    if f.type in ("audience", "audiences", "segment"):
        table = names.get("segment" if f.type == "segment" else "audience", {})
        ids = value if isinstance(value, list) else [value]
        shown = ", ".join(f"“{table.get(i, f'#{i} (deleted)')}”" for i in ids)
        return f"{operator.label[0].upper()}{operator.label[1:]} {shown}"
    if operator.arity == "none":
        return f"{subject} {operator.label}"
    if operator.arity == "two":
        return f"{subject} {operator.label} {_fmt(value[0])} and {_fmt(value[1])}"
    if operator.arity == "list":
        return f"{subject} {operator.label} " + ", ".join(_fmt(label.get(v, v)) for v in value)
    if operator.arity == "days":
        text = operator.label.replace("N", str(value))
        return f"{subject} {text}"
    return f"{subject} {operator.label} {_fmt(label.get(value, value))}"


def reference_names(tree: dict[str, Any]) -> dict[str, dict[int, str]]:
    from tagbase.segments.rules import referenced

    audiences = referenced(tree, "audience")
    segments = referenced(tree, "segment")
    return {
        "audience": dict(Audience.objects.filter(pk__in=audiences).values_list("pk", "name")),
        "segment": dict(Segment.objects.filter(pk__in=segments).values_list("pk", "name")),
    }
