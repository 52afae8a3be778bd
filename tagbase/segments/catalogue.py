"""The field catalogue and the operator table (docs/segments.md is the contract).

Each field says its group, label, value type and parameters; each (type, operator) gives both
the query and the human sentence, so the builder, the summary and the SQL cannot drift. A field's
``build`` turns one validated condition into a Django ``Q`` over ``Customer`` that is never SQL
NULL — a test that may meet NULL is guarded by ``IS NOT NULL`` (``_known``), related data is
reached through ``HasRows`` (``EXISTS`` or ``sc_id IN``, never NULL) — so that ``~Q`` (a negated
group) is always the exact complement. No value from a rule ever reaches SQL text: values, and
attribute keys, are parameters of the queries. The test oracle (``tests/oracle.py``, written from
the doc) checks every operator of every field on both engines.
"""

from __future__ import annotations

import calendar
import operator as op
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db.backends.signals import connection_created
from django.db.models import (
    BigIntegerField,
    CharField,
    Count,
    DecimalField,
    Exists,
    Expression,
    F,
    Func,
    Max,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Cast, ExtractDay, ExtractMonth, Round, Substr
from django.db.models.lookups import (
    Contains,
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    IsNull,
    LessThan,
    LessThanOrEqual,
    Lookup,
    StartsWith,
)

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


# --- Lower case and custom attributes: SQL that differs between the engines -----------------


_FINAL_SIGMA, _SIGMA = "\u03c2", "\u03c3"


def fold(text: str) -> str:
    """The case-insensitive form of a text (docs/segments.md#values): Unicode lower case of each
    character on its own — the simple case mapping PostgreSQL's ``lower()`` applies, so 'İ' is
    'i' — with the final sigma read as a sigma."""
    # str.lower() differs from a character-by-character lower case only in 'İ' (to 'i' plus a
    # combining dot) and in the final sigma; the C-level call keeps it fast on SQLite.
    lowered = text.replace("\u0130", "i").lower() if "\u0130" in text else text.lower()
    return lowered.replace(_FINAL_SIGMA, _SIGMA) if _FINAL_SIGMA in lowered else lowered


def _lower(value: object) -> object:
    return fold(value) if isinstance(value, str) else value


def _on_connect(sender: object, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function("TAGBASE_LOWER", 1, _lower, deterministic=True)


def register_sqlite_functions() -> None:
    """SQLite's lower() folds ASCII only; strings are compared with ``fold`` there."""
    connection_created.connect(_on_connect, dispatch_uid="tagbase_segments_lower")


class ULower(Func):
    """``fold`` in SQL: PostgreSQL's ``lower()`` with the final sigma replaced, a registered
    function on SQLite."""

    function = "LOWER"
    output_field = CharField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(compiler, connection, function="TAGBASE_LOWER", **extra)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        sql, params = super().as_sql(compiler, connection, **extra)
        return f"REPLACE({sql}, %s, %s)", (*params, _FINAL_SIGMA, _SIGMA)


_SAFE_KEY = re.compile(r"[A-Za-z0-9_.\-]{1,100}")


class JsonKey(Func):
    """One top-level key of a JSON column, always as an object key (a key such as "123" is not
    an array index, "a.b" is one key, not a path). The key goes to SQL only as a parameter: the
    SQLite path ``$."key"`` (keys are validated to letters, digits, '_', '-' and '.', so they
    need no escaping inside the quotes) or PostgreSQL's text key of ``->`` / ``->>``.

    ``kind`` says what the expression gives:
    - ``"type"``: the JSON type — 'string', 'number', 'true', 'false', 'null', 'object',
      'array' — or NULL when the key is missing, the same on both engines;
    - ``"string"``: the text of a JSON string, else NULL;
    - ``"number"``: a JSON number (not a boolean) as an SQL number — PostgreSQL's exact
      ``numeric``, SQLite's INTEGER or REAL — else NULL;
    - ``"date"``: the first ten characters of a JSON string when they are a valid calendar
      date ``YYYY-MM-DD`` (years 0001-9999), else NULL. No cast can fail on any value.
    """

    def __init__(self, column: str, key: str, kind: str) -> None:
        if not _SAFE_KEY.fullmatch(key):
            raise ValueError(f"not an attribute key: {key!r}")
        if kind not in ("type", "string", "number", "date"):
            raise ValueError(kind)
        self.key, self.kind = key, kind
        output = DecimalField() if kind == "number" else CharField()
        super().__init__(F(column), output_field=output)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        col, col_params = compiler.compile(self.source_expressions[0])
        path = '$."' + self.key + '"'
        pieces = {
            "TYPE": (f"json_type({col}, %s)", (*col_params, path)),
            "VALUE": (f"json_extract({col}, %s)", (*col_params, path)),
        }
        return _expand(_SQLITE[self.kind], pieces)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        col, col_params = compiler.compile(self.source_expressions[0])
        pieces = {
            "TYPE": (f"jsonb_typeof({col} -> %s)", (*col_params, self.key)),
            "JSON": (f"({col} -> %s)", (*col_params, self.key)),
            "TEXT": (f"({col} ->> %s)", (*col_params, self.key)),
        }
        return _expand(_POSTGRESQL[self.kind], pieces)


def _expand(template: str, pieces: dict[str, tuple[str, tuple[Any, ...]]]) -> tuple[str, list[Any]]:
    """SQL from a template whose @NAME@ markers stand for pieces of SQL with parameters; the
    parameters follow the order the markers appear in."""
    params: list[Any] = []

    def put(match: re.Match[str]) -> str:
        sql, piece_params = pieces[match.group(1)]
        params.extend(piece_params)
        return sql

    return re.sub(r"@([A-Z]+)@", put, template), params


_SQLITE = {
    "type": (
        "CASE @TYPE@ WHEN 'text' THEN 'string' WHEN 'integer' THEN 'number'"
        " WHEN 'real' THEN 'number' ELSE @TYPE@ END"
    ),
    "string": "CASE WHEN @TYPE@ = 'text' THEN @VALUE@ END",
    # CAST gives NUMERIC affinity, so a decimal parameter (sent as text) compares as a number.
    "number": "CAST(CASE WHEN @TYPE@ IN ('integer', 'real') THEN @VALUE@ END AS NUMERIC)",
    # A day number turned back into a date normalises an impossible day (2024-02-30 gives
    # 2024-03-01), so a valid date is one that comes back unchanged. (date() alone keeps
    # days up to 31 as they are.)
    "date": (
        "CASE WHEN @TYPE@ = 'text'"
        " AND substr(@VALUE@, 1, 10) GLOB '[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]'"
        " AND substr(@VALUE@, 1, 4) <> '0000'"
        " AND date(julianday(substr(@VALUE@, 1, 10))) = substr(@VALUE@, 1, 10)"
        " THEN substr(@VALUE@, 1, 10) END"
    ),
}
_PG_YEAR = "CAST(substr(@TEXT@, 1, 4) AS integer)"
_PG_LEAP = f"(mod({_PG_YEAR}, 4) = 0 AND (mod({_PG_YEAR}, 100) <> 0 OR mod({_PG_YEAR}, 400) = 0))"
_POSTGRESQL = {
    "type": "CASE @TYPE@ WHEN 'boolean' THEN @TEXT@ ELSE @TYPE@ END",
    "string": "CASE WHEN @TYPE@ = 'string' THEN @TEXT@ END",
    # Unconstrained numeric: exact, no overflow for 1e30 and no rounding of 1e-12.
    "number": "CASE WHEN @TYPE@ = 'number' THEN CAST(@JSON@ AS numeric) END",
    # The shape first; the casts inside run only on digits the expression has checked.
    "date": (
        "CASE WHEN @TYPE@ = 'string'"
        " AND @TEXT@ ~ '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])'"
        " AND substr(@TEXT@, 1, 4) <> '0000' THEN"
        " CASE WHEN CAST(substr(@TEXT@, 9, 2) AS integer)"
        " <= CASE CAST(substr(@TEXT@, 6, 2) AS integer)"
        f" WHEN 2 THEN CASE WHEN {_PG_LEAP} THEN 29 ELSE 28 END"
        " WHEN 4 THEN 30 WHEN 6 THEN 30 WHEN 9 THEN 30 WHEN 11 THEN 30 ELSE 31 END"
        " THEN substr(@TEXT@, 1, 10) END END"
    ),
}


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


class HasRows(Exists):
    """Customers with at least one of ``rows`` (whose ``column`` is the customer id); never NULL.

    The SQL depends on the engine and on what the query reads:
    - PostgreSQL: ``EXISTS (… WHERE customer_id = sc_id)``, planned as a semi- or anti-join, or a
      look-up per customer under OR. (``sc_id [NOT] IN (subquery)`` becomes a hashed subplan,
      and once the ids outgrow ``work_mem`` a plain one: a scan of them per customer.)
    - SQLite, a query that reads every customer (counts, metrics, the job): ``sc_id IN
      (subquery)``, which SQLite runs once into a temporary index — 2-4 times faster there than a
      correlated subquery run for each customer.
    - SQLite, a page (a query with LIMIT): ``EXISTS``, so that the scan in id order stops as soon
      as the page is full instead of first collecting every id of the subquery.
    """

    def __init__(self, rows: QuerySet[Any], column: str = "customer_id") -> None:
        super().__init__(rows.filter(**{column: OuterRef("sc_id")}))
        self.ids = Q(sc_id__in=rows.values(column))
        self.ids_where: Any = None

    def resolve_expression(self, query: Any = None, *args: Any, **kwargs: Any) -> Any:
        resolved = super().resolve_expression(query, *args, **kwargs)
        if query is not None:
            resolved.ids_where = self.ids.resolve_expression(query, *args, **kwargs)
        return resolved

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        if self.ids_where is None or compiler.query.is_sliced:
            return self.as_sql(compiler, connection, **extra)
        try:
            return compiler.compile(self.ids_where)
        except EmptyResultSet:
            return compiler.compile(Value(False))


def _in(rows: QuerySet[Any], column: str = "customer_id") -> Q:
    """Customers with at least one of these rows (see ``HasRows``)."""
    return Q(HasRows(rows, column))


def _compare(path: str, operator: str, value: Any) -> Q:
    """A comparison on a value that is present (the caller guarantees non-NULL rows)."""
    if operator == "between":
        low, high = value
        return Q(**{f"{path}__gte": low, f"{path}__lte": high})
    if operator == "ne":
        return ~Q(**{path: value})
    return Q(**{f"{path}__{_LOOKUP[operator]}": value})


_LOOKUPS: dict[str, type[Lookup]] = {
    "eq": Exact,
    "gt": GreaterThan,
    "gte": GreaterThanOrEqual,
    "lt": LessThan,
    "lte": LessThanOrEqual,
}


def _compare_expr(expr: Any, operator: str, value: Any) -> Q:
    """A comparison of an expression (the caller deals with NULL; ``ne`` is ``~eq``)."""
    if operator == "between":
        low, high = value
        return Q(GreaterThanOrEqual(expr, low)) & Q(LessThanOrEqual(expr, high))
    return Q(_LOOKUPS[operator](expr, value))


def _holds_at_zero(operator: str, value: Any) -> bool:
    """Does the comparison hold for the value 0 (customers without any row)?"""
    if operator == "between":
        return bool(value[0] <= 0 <= value[1])
    return _CMP[operator](Decimal(0), Decimal(str(value)))


def _known(expr: Any, condition: Q) -> Q:
    """``condition`` on ``expr``, false (never NULL) where ``expr`` is NULL."""
    return Q(IsNull(expr, False)) & condition


def _text_q(expr: Any, cond: Cond) -> Q:
    """String operators on a text expression that is NULL for "no value"; never NULL."""
    operator: str = cond["operator"]
    value: Any = cond.get("value")
    if operator == "is_empty":
        return Q(IsNull(expr, True)) | Q(Exact(expr, ""))
    if operator == "is_not_empty":
        return ~_text_q(expr, dict(cond, operator="is_empty"))
    if operator == "ne":
        return ~_text_q(expr, dict(cond, operator="eq"))
    lowered = ULower(expr)
    if operator == "eq":
        return _known(expr, Q(Exact(lowered, fold(value))))
    if operator == "in_list":
        return _known(expr, Q(In(lowered, sorted({fold(v) for v in value}))))
    if operator == "contains":
        return _known(expr, Q(Contains(lowered, fold(value))))
    if operator == "starts_with":
        return _known(expr, Q(StartsWith(lowered, fold(value))))
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
    return has & _key_filter(month * Value(100) + day, ranges, 229 if feb29 else None)


def _key_filter(key: Any, ranges: list[tuple[Any, Any]], feb29: Any) -> Q:
    """``key`` (month * 100 + day, or 'MM-DD' text) within one of the ranges, or equal to
    ``feb29`` when given; the caller makes sure the key is not NULL."""
    q = NOTHING
    for low, high in ranges:
        q |= Q(GreaterThanOrEqual(key, low)) & Q(LessThanOrEqual(key, high))
    if feb29:
        q |= Q(Exact(key, feb29))
    return q


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
        return _text_q(F(column), cond)

    return build


def _flag(q_true: Q) -> Builder:
    def build(ctx: Context, cond: Cond) -> Q:
        return q_true if cond["value"] else ~q_true

    return build


# --- Custom attributes ----------------------------------------------------------------------


def _attr(cond: Cond, kind: str) -> JsonKey:
    return JsonKey("attributes", cond["key"], kind)


def _attribute_string(ctx: Context, cond: Cond) -> Q:
    return _text_q(_attr(cond, "string"), cond)


def _attribute_number(ctx: Context, cond: Cond) -> Q:
    operator = cond["operator"]
    if operator == "ne":
        return ~_attribute_number(ctx, dict(cond, operator="eq"))
    number = _attr(cond, "number")
    return _known(number, _compare_expr(number, operator, cond["value"]))


def _attribute_boolean(ctx: Context, cond: Cond) -> Q:
    kind = _attr(cond, "type")
    return _known(kind, Q(Exact(kind, "true" if cond["value"] else "false")))


def _attribute_date(ctx: Context, cond: Cond) -> Q:
    """A valid date written in the first ten characters, compared as 'YYYY-MM-DD' text."""
    day = _attr(cond, "date")
    if cond["operator"] == "anniversary_within_days":
        found = _anniversary_keys(ctx, cond["value"])
        if found is None:
            return Q(IsNull(day, False))
        ranges, feb29 = found
        text = [
            (f"{low // 100:02d}-{low % 100:02d}", f"{high // 100:02d}-{high % 100:02d}")
            for low, high in ranges
        ]
        return _known(day, _key_filter(Substr(day, 6, 5), text, "02-29" if feb29 else None))
    first, last = _date_bounds(ctx, cond)
    q = Q(IsNull(day, False))
    if first is not None:
        q &= Q(GreaterThanOrEqual(day, first.isoformat()))
    if last is not None:
        q &= Q(LessThanOrEqual(day, last.isoformat()))
    return q


# --- Receipts -------------------------------------------------------------------------------


def _stats_number(column: str, *, zero_without: bool) -> Builder:
    def build(ctx: Context, cond: Cond) -> Q:
        operator, value = cond["operator"], cond["value"]
        if operator == "ne":
            return ~build(ctx, dict(cond, operator="eq"))
        holds = _compare(column, operator, value)
        if zero_without and _holds_at_zero(operator, value):
            # 0 without receipts: no metrics row, or one that holds — one anti-join, as the
            # row is unique per customer.
            return ~_in(CustomerStats.objects.exclude(holds))
        return _in(CustomerStats.objects.filter(holds))

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
            return _in(keyed.filter(_key_filter(F("_k"), ranges, 229 if feb29 else None)))
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


def _cents(value: Any) -> Any:
    """A money value (or [low, high]) in whole cents."""
    if isinstance(value, list):
        return [_cents(v) for v in value]
    return int(Decimal(value) * 100)


def _sum_cents() -> Sum:
    """The exact sum of amounts in whole cents (on SQLite amounts are binary REALs, and
    0.10 + 0.20 is not 0.30 there; see customers.bulk)."""
    return Sum(Cast(Round(F("amount") * Value(100)), BigIntegerField()))


def _recent(  # type: ignore[no-untyped-def]
    model: Any,
    date_column: str,
    agg: Callable[[], Any],
    extra: Callable[[Cond], Q],
    *,
    cents: bool = False,
    count: bool = False,
):
    """A count or sum over a customer's rows dated within the last ``days`` days; 0 without.
    With ``cents``, the aggregate is in cents and so is the compared value. A ``count`` of at
    least one (or of none) needs no grouping: it is "has such a row" (or its complement)."""

    def build(ctx: Context, cond: Cond) -> Q:
        operator, value = cond["operator"], cond["value"]
        if operator == "ne":
            return ~build(ctx, dict(cond, operator="eq"))
        start = ctx.day_start(_shift(ctx.today, -cond["days"]))
        # B610 below: `extra` is this function's Q builder, not QuerySet.extra().
        rows = model.objects.filter(extra(cond), **{f"{date_column}__gte": start})  # nosec B610
        if count and (operator, value) in (("gte", 1), ("gt", 0)):
            return _in(rows)
        if count and (operator, value) in (("eq", 0), ("lte", 0), ("lt", 1)):
            return ~_in(rows)
        grouped = (
            rows.values("customer_id")
            .annotate(_agg=agg())
            .filter(_compare("_agg", operator, _cents(value) if cents else value))
        )
        q = _in(grouped)
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
    return _in(last.filter(inner))


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
    build=_recent(Receipt, "date", lambda: Count("id"), lambda c: Q(), count=True),
)
_field(
    id="receipts.amount_recent",
    group="Receipts",
    label="Amount spent in the last N days",
    type="money",
    params=("days",),
    build=_recent(Receipt, "date", _sum_cents, lambda c: Q(), cents=True),
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
    build=_recent(
        Event, "occurred_at", lambda: Count("id"), lambda c: Q(name=c["event"]), count=True
    ),
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
