"""The field catalogue and the operator table (docs/segments.md is the contract).

Each field says its group, label, value type and parameters; each (type, operator) gives both
the query and the human sentence, so the builder, the summary and the SQL cannot drift. A field's
``build`` turns one validated condition into a Django ``Q`` over ``Customer`` that is never SQL
NULL — related data is reached through ``sc_id IN (subquery)`` — so that ``~Q`` (a negated group)
is always the exact complement. No value from a rule ever reaches SQL text: values are
parameters of the ORM's queries.
"""

from __future__ import annotations

import calendar
import operator as op
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.backends.signals import connection_created
from django.db.models import (
    Case,
    CharField,
    Count,
    DecimalField,
    Expression,
    F,
    Func,
    IntegerField,
    Max,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, ExtractDay, ExtractMonth, Substr

from tagbase.audiences.models import Membership
from tagbase.customers.models import Card, CardStatus, CustomerStats, Event, Receipt

# --- Value types and operators ------------------------------------------------------------------


@dataclass(frozen=True)
class Operator:
    id: str
    label: str  # as the builder shows it
    arity: str  # "one", "two" (between), "none", "list", "days"


OPERATORS: dict[str, dict[str, Operator]] = {}


def _ops(type_: str, *items: tuple[str, str, str]) -> None:
    OPERATORS[type_] = {i: Operator(i, label, arity) for i, label, arity in items}


_COMPARE = (
    ("eq", "equals", "one"),
    ("ne", "does not equal", "one"),
    ("gt", "greater than", "one"),
    ("gte", "greater than or equal to", "one"),
    ("lt", "less than", "one"),
    ("lte", "less than or equal to", "one"),
    ("between", "between", "two"),
)
_ops(
    "string",
    ("eq", "equals", "one"),
    ("ne", "does not equal", "one"),
    ("contains", "contains", "one"),
    ("starts_with", "starts with", "one"),
    ("is_empty", "is empty", "none"),
    ("is_not_empty", "is not empty", "none"),
    ("in_list", "is one of", "list"),
)
_ops("number", *_COMPARE)
_ops("money", *_COMPARE)
_ops(
    "date",
    ("before", "is before", "one"),
    ("after", "is after", "one"),
    ("between", "is between", "two"),
    ("in_last_days", "is in the last N days", "days"),
    ("more_than_days_ago", "is more than N days ago", "days"),
    ("anniversary_within_days", "has an anniversary within N days", "days"),
)
_ops("boolean", ("is", "is", "one"))
_ops("choice", ("is", "is", "one"), ("is_not", "is not", "one"), ("in_list", "is one of", "list"))
_ops("audience", ("in", "is in audience", "one"), ("not_in", "is not in audience", "one"))
_ops(
    "audiences",
    ("in_any", "is in any of the audiences", "list"),
    ("in_none", "is in none of the audiences", "list"),
)
_ops("segment", ("in", "is in segment", "one"), ("not_in", "is not in segment", "one"))


@dataclass(frozen=True)
class Context:
    """What a compilation needs besides the rule: the moment it is evaluated at."""

    now: datetime
    resolve_segment: Callable[[int], Q] = field(default=lambda _id: Q(pk__in=[]))

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(settings.TIME_ZONE)

    @property
    def today(self) -> date:
        return self.now.astimezone(self.tz).date()

    def day_start(self, day: date) -> datetime:
        """The first instant of a local calendar day."""
        return datetime.combine(day, time.min, tzinfo=self.tz)


Cond = dict[str, Any]
Builder = Callable[[Context, Cond], Q]


@dataclass(frozen=True)
class Field:
    id: str
    group: str
    label: str
    type: str
    build: Builder
    params: tuple[str, ...] = ()  # "event", "days", "key"
    choices: tuple[tuple[str, str], ...] = ()
    whole: bool = False  # numbers must be whole (counts, ages, days)
    minimum: int | None = None
    maximum: int | None = None
    help: str = ""

    @property
    def operators(self) -> dict[str, Operator]:
        return OPERATORS[self.type]


GROUPS = ("Customer", "Receipts", "Cards", "Audiences", "Events", "Segments")
FIELDS: dict[str, Field] = {}


def _field(**kwargs: Any) -> None:
    f = Field(**kwargs)
    FIELDS[f.id] = f


# --- SQLite: Unicode lower case -------------------------------------------------------------


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _on_connect(sender: object, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function("TAGBASE_LOWER", 1, _lower, deterministic=True)


def register_sqlite_functions() -> None:
    """SQLite's lower() folds ASCII only; strings are compared with Python's Unicode lower()."""
    connection_created.connect(_on_connect, dispatch_uid="tagbase_segments_lower")


class ULower(Func):
    function = "LOWER"
    output_field = CharField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(compiler, connection, function="TAGBASE_LOWER", **extra)


class JsonKind(Func):
    """The JSON type of ``attributes[key]``: 'string', 'number', 'true', 'false', 'null',
    'object', 'array', or NULL when the key is missing — the same on both engines."""

    output_field = CharField()

    def __init__(self, column: str, key: str) -> None:
        super().__init__(F(column), Value(key))

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        column, key = self.source_expressions
        col_sql, col_params = compiler.compile(column)
        path = '$."' + str(getattr(key, "value", "")) + '"'
        sql = (
            f"CASE json_type({col_sql}, %s) WHEN 'text' THEN 'string' WHEN 'integer' THEN 'number'"
            f" WHEN 'real' THEN 'number' ELSE json_type({col_sql}, %s) END"
        )
        return sql, (*col_params, path, *col_params, path)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        column, key = self.source_expressions
        col_sql, col_params = compiler.compile(column)
        sql = (
            f"CASE jsonb_typeof({col_sql} -> %s) WHEN 'boolean' THEN ({col_sql} ->> %s)"
            f" ELSE jsonb_typeof({col_sql} -> %s) END"
        )
        key_value = str(getattr(key, "value", ""))
        return sql, (*col_params, key_value, *col_params, key_value, *col_params, key_value)


# --- Building blocks ------------------------------------------------------------------------

_CMP: dict[str, Callable[[Any, Any], bool]] = {
    "eq": op.eq,
    "ne": op.ne,
    "gt": op.gt,
    "gte": op.ge,
    "lt": op.lt,
    "lte": op.le,
}
_LOOKUP = {"eq": "exact", "gt": "gt", "gte": "gte", "lt": "lt", "lte": "lte"}
NOTHING = Q(pk__in=[])


def _in(subquery: QuerySet[Any], column: str = "customer_id") -> Q:
    return Q(sc_id__in=subquery.values(column))


def _compare(path: str, operator: str, value: Any) -> Q:
    """A comparison on a value that is present (the caller guarantees non-NULL rows)."""
    if operator == "between":
        low, high = value
        return Q(**{f"{path}__gte": low, f"{path}__lte": high})
    if operator == "ne":
        return ~Q(**{path: value})
    return Q(**{f"{path}__{_LOOKUP[operator]}": value})


def _holds_at_zero(operator: str, value: Any) -> bool:
    """Does the comparison hold for the value 0 (customers without any row)?"""
    if operator == "between":
        return bool(value[0] <= 0 <= value[1])
    return _CMP[operator](Decimal(0), Decimal(str(value)))


def _string_q(expr_path: str, cond: Cond, present: Q) -> Q:
    """String operators on ``expr_path`` (an annotation or column holding the lowered text);
    ``present`` says which customers have a value at all."""
    operator: str = cond["operator"]
    value: Any = cond.get("value")
    if operator == "is_empty":
        return ~present | Q(**{expr_path: ""})
    if operator == "is_not_empty":
        return present & ~Q(**{expr_path: ""})
    if operator == "ne":
        return ~(present & Q(**{expr_path: value.lower()}))
    if operator == "eq":
        return present & Q(**{expr_path: value.lower()})
    if operator == "in_list":
        return present & Q(**{f"{expr_path}__in": sorted({v.lower() for v in value})})
    if operator == "contains":
        return present & Q(**{f"{expr_path}__contains": value.lower()})
    if operator == "starts_with":
        return present & Q(**{f"{expr_path}__startswith": value.lower()})
    raise ValueError(operator)


# --- Dates ----------------------------------------------------------------------------------


def _add_years(day: date, years: int) -> date:
    year = min(max(day.year + years, 1), 9999)
    if day.month == 2 and day.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return day.replace(year=year)


def _shift(day: date, days: int) -> date:
    try:
        return day + timedelta(days=days)
    except OverflowError:
        return date.max if days > 0 else date.min


def _date_bounds(ctx: Context, cond: Cond) -> tuple[date | None, date | None]:
    """The inclusive [first, last] local dates a date operator accepts (None: open)."""
    operator: str = cond["operator"]
    value: Any = cond.get("value")
    if operator == "before":
        return None, _shift(value, -1)
    if operator == "after":
        return _shift(value, 1), None
    if operator == "between":
        return value[0], value[1]
    if operator == "in_last_days":
        return _shift(ctx.today, -value), ctx.today
    if operator == "more_than_days_ago":
        return None, _shift(ctx.today, -value - 1)
    raise ValueError(operator)


def _range_q(path: str, first: Any, last: Any, *, datetime_: bool, ctx: Context) -> Q:
    q = Q(**{f"{path}__isnull": False})
    if datetime_:
        if first is not None:
            q &= Q(**{f"{path}__gte": ctx.day_start(first)})
        if last is not None and last < date.max:
            q &= Q(**{f"{path}__lt": ctx.day_start(last + timedelta(days=1))})
    else:
        if first is not None:
            q &= Q(**{f"{path}__gte": first})
        if last is not None:
            q &= Q(**{f"{path}__lte": last})
    return q


def _anniversary_keys(ctx: Context, days: int) -> tuple[list[tuple[int, int]], bool] | None:
    """Ranges of month*100+day keys whose anniversary is within ``days`` days, and whether a
    29 February date counts (its anniversary is 28 February in a year without one).
    None: every date matches."""
    if days >= 365:
        return None
    start = ctx.today
    end = start + timedelta(days=days)
    key = lambda d: d.month * 100 + d.day  # noqa: E731
    if start.year == end.year:
        ranges = [(key(start), key(end))]
    else:
        ranges = [(key(start), 1231), (101, key(end))]
    feb29 = any(
        not calendar.isleap(year) and start <= date(year, 2, 28) <= end
        for year in {start.year, end.year}
    )
    return ranges, feb29


def _anniversary_q(month: Expression, day: Expression, ctx: Context, days: int, has: Q) -> Q:
    found = _anniversary_keys(ctx, days)
    if found is None:
        return has
    ranges, feb29 = found
    key = month * Value(100) + day
    return has & _key_filter(key, ranges, feb29)


def _key_filter(key: Any, ranges: list[tuple[int, int]], feb29: bool) -> Q:
    from tagbase.customers.models import Customer

    matching = Customer.objects.alias(_k=key)
    q = NOTHING
    for low, high in ranges:
        q |= Q(_k__gte=low, _k__lte=high)
    if feb29:
        q |= Q(_k=229)
    return Q(sc_id__in=matching.filter(q).values("sc_id"))


def _date_column(
    path: str, *, datetime_: bool, model_qs: Callable[[Q], Q] | None = None
) -> Builder:
    """Date operators on a date or date-time column of Customer (``path``)."""

    def build(ctx: Context, cond: Cond) -> Q:
        operator = cond["operator"]
        present = Q(**{f"{path}__isnull": False})
        if operator == "anniversary_within_days":
            tz = ctx.tz if datetime_ else None
            month = ExtractMonth(path, tzinfo=tz) if datetime_ else ExtractMonth(path)
            day = ExtractDay(path, tzinfo=tz) if datetime_ else ExtractDay(path)
            return _anniversary_q(month, day, ctx, cond["value"], present)
        first, last = _date_bounds(ctx, cond)
        return _range_q(path, first, last, datetime_=datetime_, ctx=ctx)

    return build


def _days_since(path: str, *, datetime_: bool) -> Builder:
    """ "Days since" (today - the local date of ``path``) compared with a whole number."""

    def build(ctx: Context, cond: Cond) -> Q:
        return _days_since_q(ctx, cond, path, datetime_=datetime_)

    return build


def _days_since_q(ctx: Context, cond: Cond, path: str, *, datetime_: bool) -> Q:
    operator, value = cond["operator"], cond["value"]
    today = ctx.today

    def on(first_days: int | None, last_days: int | None) -> Q:
        # days in [first_days, last_days] <=> date in [today - last_days, today - first_days]
        first = _shift(today, -last_days) if last_days is not None else None
        last = _shift(today, -first_days) if first_days is not None else None
        return _range_q(path, first, last, datetime_=datetime_, ctx=ctx)

    if operator == "between":
        return on(value[0], value[1])
    if operator == "eq":
        return on(value, value)
    if operator == "ne":
        return ~on(value, value)
    if operator == "gt":
        return on(value + 1, None)
    if operator == "gte":
        return on(value, None)
    if operator == "lt":
        return on(None, value - 1)
    if operator == "lte":
        return on(None, value)
    raise ValueError(operator)


# --- Customer -------------------------------------------------------------------------------


def _gender(ctx: Context, cond: Cond) -> Q:
    code = {"unknown": ""}
    operator, value = cond["operator"], cond["value"]
    if operator == "in_list":
        return Q(gender__in=[code.get(v, v) for v in value])
    q = Q(gender=code.get(value, value))
    return q if operator == "is" else ~q


def _age(ctx: Context, cond: Cond) -> Q:
    operator, value = cond["operator"], cond["value"]
    today = ctx.today

    def at_least(n: int) -> Q:  # age >= n  <=>  born on or before today minus n years
        return Q(birth_date__isnull=False, birth_date__lte=_add_years(today, -n))

    def below(n: int) -> Q:  # has a birth date and age < n
        return Q(birth_date__isnull=False) & ~at_least(n)

    if operator == "between":
        return at_least(value[0]) & below(value[1] + 1)
    if operator == "eq":
        return at_least(value) & below(value + 1)
    if operator == "ne":
        return ~(at_least(value) & below(value + 1))
    if operator == "gt":
        return at_least(value + 1)
    if operator == "gte":
        return at_least(value)
    if operator == "lt":
        return below(value)
    if operator == "lte":
        return below(value + 1)
    raise ValueError(operator)


def _customer_text(column: str) -> Builder:
    def build(ctx: Context, cond: Cond) -> Q:
        from tagbase.customers.models import Customer

        operator = cond["operator"]
        if operator in ("is_empty", "is_not_empty"):
            return _string_q(column, cond, Q(pk__isnull=False))
        lowered = Customer.objects.alias(_v=ULower(column))
        if operator == "ne":
            inner = dict(cond, operator="eq")
            return ~Q(sc_id__in=lowered.filter(_string_q("_v", inner, Q())).values("sc_id"))
        return Q(sc_id__in=lowered.filter(_string_q("_v", cond, Q())).values("sc_id"))

    return build


def _flag(q_true: Q) -> Builder:
    def build(ctx: Context, cond: Cond) -> Q:
        return q_true if cond["value"] else ~q_true

    return build


# --- Custom attributes ----------------------------------------------------------------------


def _attr_qs(key: str) -> QuerySet[Any]:
    from tagbase.customers.models import Customer

    return Customer.objects.alias(_kind=JsonKind("attributes", key))


def _attr_text(key: str) -> KeyTextTransform:
    return KeyTextTransform(key, "attributes")


def _attribute_string(ctx: Context, cond: Cond) -> Q:
    key, operator = cond["key"], cond["operator"]
    strings = _attr_qs(key).filter(_kind="string")
    if operator == "is_empty":
        return ~Q(sc_id__in=strings.alias(_t=_attr_text(key)).exclude(_t="").values("sc_id"))
    if operator == "is_not_empty":
        return Q(sc_id__in=strings.alias(_t=_attr_text(key)).exclude(_t="").values("sc_id"))
    lowered = strings.alias(_v=ULower(_attr_text(key)))
    if operator == "ne":
        inner = dict(cond, operator="eq")
        return ~Q(sc_id__in=lowered.filter(_string_q("_v", inner, Q())).values("sc_id"))
    return Q(sc_id__in=lowered.filter(_string_q("_v", cond, Q())).values("sc_id"))


def _attribute_number(ctx: Context, cond: Cond) -> Q:
    key, operator, value = cond["key"], cond["operator"], cond["value"]
    number = Case(
        When(
            _kind="number",
            then=Cast(_attr_text(key), DecimalField(max_digits=40, decimal_places=10)),
        ),
        output_field=DecimalField(max_digits=40, decimal_places=10),
    )
    numbers = _attr_qs(key).filter(_kind="number").alias(_n=number)
    if operator == "ne":
        return ~Q(sc_id__in=numbers.filter(_n=value).values("sc_id"))
    return Q(sc_id__in=numbers.filter(_compare("_n", operator, value)).values("sc_id"))


def _attribute_boolean(ctx: Context, cond: Cond) -> Q:
    wanted = "true" if cond["value"] else "false"
    return Q(sc_id__in=_attr_qs(cond["key"]).filter(_kind=wanted).values("sc_id"))


_DATE_SHAPE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"


def _attribute_date(ctx: Context, cond: Cond) -> Q:
    key, operator = cond["key"], cond["operator"]
    dated = (
        _attr_qs(key)
        .filter(_kind="string")
        .alias(_raw=_attr_text(key))
        .filter(_raw__regex=_DATE_SHAPE)
        .alias(_d=Substr("_raw", 1, 10))
    )
    if operator == "anniversary_within_days":
        found = _anniversary_keys(ctx, cond["value"])
        if found is None:
            return Q(sc_id__in=dated.values("sc_id"))
        ranges, feb29 = found
        key_expr = Cast(Substr("_raw", 6, 2), IntegerField()) * Value(100) + Cast(
            Substr("_raw", 9, 2), IntegerField()
        )
        keyed = dated.alias(_k=key_expr)
        q = NOTHING
        for low, high in ranges:
            q |= Q(_k__gte=low, _k__lte=high)
        if feb29:
            q |= Q(_k=229)
        return Q(sc_id__in=keyed.filter(q).values("sc_id"))
    first, last = _date_bounds(ctx, cond)
    q = Q()
    if first is not None:
        q &= Q(_d__gte=first.isoformat())
    if last is not None:
        q &= Q(_d__lte=last.isoformat())
    return Q(sc_id__in=dated.filter(q).values("sc_id"))


# --- Receipts -------------------------------------------------------------------------------


def _stats_number(column: str, *, zero_without: bool) -> Builder:
    def build(ctx: Context, cond: Cond) -> Q:
        operator, value = cond["operator"], cond["value"]
        if operator == "ne":
            return ~build(ctx, dict(cond, operator="eq"))
        q = _in(CustomerStats.objects.filter(_compare(column, operator, value)))
        if zero_without and _holds_at_zero(operator, value):
            q |= ~_in(CustomerStats.objects.all())
        return q

    return build


def _stats_date(column: str) -> Builder:
    def build(ctx: Context, cond: Cond) -> Q:
        if cond["operator"] == "anniversary_within_days":
            tz = ctx.tz
            keyed = CustomerStats.objects.filter(**{f"{column}__isnull": False}).alias(
                _k=ExtractMonth(column, tzinfo=tz) * Value(100) + ExtractDay(column, tzinfo=tz)
            )
            found = _anniversary_keys(ctx, cond["value"])
            if found is None:
                return _in(keyed)
            ranges, feb29 = found
            q = NOTHING
            for low, high in ranges:
                q |= Q(_k__gte=low, _k__lte=high)
            if feb29:
                q |= Q(_k=229)
            return _in(keyed.filter(q))
        first, last = _date_bounds(ctx, cond)
        return _in(
            CustomerStats.objects.filter(_range_q(column, first, last, datetime_=True, ctx=ctx))
        )

    return build


def _stats_days_since(column: str) -> Builder:
    def build(ctx: Context, cond: Cond) -> Q:
        if cond["operator"] == "ne":  # also customers without a value
            return ~build(ctx, dict(cond, operator="eq"))
        return _in(CustomerStats.objects.filter(_days_since_q(ctx, cond, column, datetime_=True)))

    return build


def _recent(model: Any, date_column: str, agg: Callable[[], Any], extra: Callable[[Cond], Q]):  # type: ignore[no-untyped-def]
    """A count or sum over a customer's rows dated within the last ``days`` days; 0 without."""

    def build(ctx: Context, cond: Cond) -> Q:
        operator, value = cond["operator"], cond["value"]
        if operator == "ne":
            return ~build(ctx, dict(cond, operator="eq"))
        start = ctx.day_start(_shift(ctx.today, -cond["days"]))
        rows = model.objects.filter(extra(cond), **{f"{date_column}__gte": start})
        grouped = (
            rows.values("customer_id")
            .annotate(_agg=agg())
            .filter(_compare("_agg", operator, value))
        )
        q = Q(sc_id__in=grouped.values("customer_id"))
        if _holds_at_zero(operator, value):
            q |= ~_in(rows)
        return q

    return build


def _event_days_since(ctx: Context, cond: Cond) -> Q:
    if cond["operator"] == "ne":  # also customers without such an event
        return ~_event_days_since(ctx, dict(cond, operator="eq"))
    last = (
        Event.objects.filter(name=cond["event"])
        .values("customer_id")
        .annotate(_last=Max("occurred_at"))
    )
    inner = _days_since_q(ctx, cond, "_last", datetime_=True)
    return Q(sc_id__in=last.filter(inner).values("customer_id"))


# --- Cards, audiences, segments ---------------------------------------------------------------


def _card_status(ctx: Context, cond: Cond) -> Q:
    operator, value = cond["operator"], cond["value"]
    if operator == "in_list":
        return _in(Card.objects.filter(status__in=value))
    q = _in(Card.objects.filter(status=value))
    return q if operator == "is" else ~q


def _audience(ctx: Context, cond: Cond) -> Q:
    q = _in(Membership.objects.filter(audience_id=cond["value"]))
    return q if cond["operator"] == "in" else ~q


def _audiences(ctx: Context, cond: Cond) -> Q:
    q = _in(Membership.objects.filter(audience_id__in=cond["value"]))
    return q if cond["operator"] == "in_any" else ~q


def _segment(ctx: Context, cond: Cond) -> Q:
    q = ctx.resolve_segment(cond["value"])
    return q if cond["operator"] == "in" else ~q


# --- The catalogue --------------------------------------------------------------------------

_GENDERS = (("m", "Male"), ("f", "Female"), ("unknown", "Unknown"))
_STATUSES = tuple((s.value, s.label) for s in CardStatus)

_field(
    id="customer.gender",
    group="Customer",
    label="Gender",
    type="choice",
    build=_gender,
    choices=_GENDERS,
)
_field(
    id="customer.age",
    group="Customer",
    label="Age",
    type="number",
    build=_age,
    whole=True,
    minimum=0,
    maximum=200,
    help="Whole years at today",
)
_field(
    id="customer.birth_date",
    group="Customer",
    label="Birth date",
    type="date",
    build=_date_column("birth_date", datetime_=False),
)
_field(
    id="customer.city", group="Customer", label="City", type="string", build=_customer_text("city")
)
_field(
    id="customer.country",
    group="Customer",
    label="Country",
    type="string",
    build=_customer_text("country"),
)
_field(
    id="customer.registered_at",
    group="Customer",
    label="Registration date",
    type="date",
    build=_date_column("registered_at", datetime_=True),
)
_field(
    id="customer.days_since_registration",
    group="Customer",
    label="Days since registration",
    type="number",
    build=_days_since("registered_at", datetime_=True),
    whole=True,
    minimum=0,
    maximum=36_500,
)
_field(
    id="customer.has_phone",
    group="Customer",
    label="Has a phone",
    type="boolean",
    build=_flag(~Q(phone_raw="")),
)
_field(
    id="customer.phone_valid",
    group="Customer",
    label="Phone is valid",
    type="boolean",
    build=_flag(Q(phone__isnull=False)),
)
_field(
    id="customer.has_email",
    group="Customer",
    label="Has an e-mail",
    type="boolean",
    build=_flag(~Q(email_raw="")),
)
_field(
    id="customer.email_valid",
    group="Customer",
    label="E-mail is valid",
    type="boolean",
    build=_flag(Q(email__isnull=False)),
)
_field(
    id="attribute.string",
    group="Customer",
    label="Custom attribute (text)",
    type="string",
    build=_attribute_string,
    params=("key",),
)
_field(
    id="attribute.number",
    group="Customer",
    label="Custom attribute (number)",
    type="number",
    build=_attribute_number,
    params=("key",),
)
_field(
    id="attribute.boolean",
    group="Customer",
    label="Custom attribute (yes/no)",
    type="boolean",
    build=_attribute_boolean,
    params=("key",),
)
_field(
    id="attribute.date",
    group="Customer",
    label="Custom attribute (date)",
    type="date",
    build=_attribute_date,
    params=("key",),
)

_field(
    id="receipts.count",
    group="Receipts",
    label="Number of receipts",
    type="number",
    build=_stats_number("receipt_count", zero_without=True),
    whole=True,
    minimum=0,
)
_field(
    id="receipts.total_amount",
    group="Receipts",
    label="Total spent",
    type="money",
    build=_stats_number("total_amount", zero_without=True),
)
_field(
    id="receipts.average_amount",
    group="Receipts",
    label="Average receipt",
    type="money",
    build=_stats_number("average_amount", zero_without=False),
)
_field(
    id="receipts.average_items",
    group="Receipts",
    label="Average items per receipt",
    type="number",
    build=_stats_number("average_items", zero_without=False),
)
_field(
    id="receipts.first_date",
    group="Receipts",
    label="First receipt date",
    type="date",
    build=_stats_date("first_receipt_at"),
)
_field(
    id="receipts.last_date",
    group="Receipts",
    label="Last receipt date",
    type="date",
    build=_stats_date("last_receipt_at"),
)
_field(
    id="receipts.days_since_first",
    group="Receipts",
    label="Days since first receipt",
    type="number",
    build=_stats_days_since("first_receipt_at"),
    whole=True,
    minimum=0,
    maximum=36_500,
)
_field(
    id="receipts.days_since_last",
    group="Receipts",
    label="Days since last receipt",
    type="number",
    build=_stats_days_since("last_receipt_at"),
    whole=True,
    minimum=0,
    maximum=36_500,
)
_field(
    id="receipts.count_recent",
    group="Receipts",
    label="Receipts in the last N days",
    type="number",
    params=("days",),
    whole=True,
    minimum=0,
    build=_recent(Receipt, "date", lambda: Count("id"), lambda c: Q()),
)
_field(
    id="receipts.amount_recent",
    group="Receipts",
    label="Amount spent in the last N days",
    type="money",
    params=("days",),
    build=_recent(Receipt, "date", lambda: Sum("amount"), lambda c: Q()),
)

_field(
    id="cards.has_card",
    group="Cards",
    label="Has a card",
    type="boolean",
    build=_flag(_in(Card.objects.all())),
)
_field(
    id="cards.status",
    group="Cards",
    label="Card status",
    type="choice",
    build=_card_status,
    choices=_STATUSES,
)

_field(id="audience", group="Audiences", label="Audience", type="audience", build=_audience)
_field(
    id="audiences", group="Audiences", label="Several audiences", type="audiences", build=_audiences
)

_field(
    id="events.count",
    group="Events",
    label="Event occurred (times in the last N days)",
    type="number",
    params=("event", "days"),
    whole=True,
    minimum=0,
    build=_recent(Event, "occurred_at", lambda: Count("id"), lambda c: Q(name=c["event"])),
)
_field(
    id="events.days_since_last",
    group="Events",
    label="Days since last event",
    type="number",
    params=("event",),
    whole=True,
    minimum=0,
    maximum=36_500,
    build=_event_days_since,
)

_field(id="segment", group="Segments", label="Saved segment", type="segment", build=_segment)


def catalogue_json() -> list[dict[str, Any]]:
    """The catalogue for the builder and ``GET /api/v1/segments/fields``."""
    groups: list[dict[str, Any]] = []
    for group in GROUPS:
        fields = []
        for f in FIELDS.values():
            if f.group != group:
                continue
            fields.append(
                {
                    "id": f.id,
                    "label": f.label,
                    "type": f.type,
                    "params": list(f.params),
                    "choices": [{"value": v, "label": label} for v, label in f.choices],
                    "whole": f.whole,
                    "minimum": f.minimum,
                    "maximum": f.maximum,
                    "help": f.help,
                    "operators": [
                        {"id": o.id, "label": o.label, "arity": o.arity}
                        for o in f.operators.values()
                    ],
                }
            )
        groups.append({"group": group, "fields": fields})
    return groups
