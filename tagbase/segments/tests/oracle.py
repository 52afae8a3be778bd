"""The test oracle: segment rules evaluated in plain Python, written from docs/segments.md.

It reads nothing from the compiler, the catalogue or ``rules.validate``: it takes the raw JSON
rule (as a client sends it) and a ``Snapshot`` of plain Python rows, and answers which customers
match and what the five metrics are, by the contract's words. Receipt metrics are computed here
from the receipts themselves, not read from ``CustomerStats``.

Field values are kept per customer as "the customer's value, or ``None`` for no value"; every
operator then follows "Customers without a value": a condition on a missing value is false,
except ``ne`` / ``is_not`` (the complements of ``eq`` / ``is``) and ``is_empty`` (its
complement is ``is_not_empty``).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

CENT = Decimal("0.01")

# --- The data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Customer:
    sc_id: int
    registered_at: datetime  # aware
    gender: str = ""  # "m", "f", or "" (not given)
    birth_date: date | None = None
    city: str = ""
    country: str = ""
    phone_raw: str = ""
    phone: str | None = None  # set only when the phone is valid
    email_raw: str = ""
    email: str | None = None  # set only when the e-mail is valid
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Receipt:
    customer_id: int
    date: datetime  # aware
    amount: Decimal
    items: int = 1


@dataclass(frozen=True)
class Card:
    customer_id: int
    status: str


@dataclass(frozen=True)
class Event:
    customer_id: int
    name: str
    occurred_at: datetime  # aware


@dataclass
class Snapshot:
    customers: list[Customer]
    receipts: list[Receipt] = field(default_factory=list)
    cards: list[Card] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    memberships: set[tuple[int, int]] = field(default_factory=set)  # (audience id, customer id)
    segments: dict[int, Any] = field(default_factory=dict)  # saved segment id -> rule (JSON)
    audiences: dict[str, int] = field(default_factory=dict)  # audience name -> id
    segment_ids: dict[str, int] = field(default_factory=dict)  # saved segment name -> id


@dataclass(frozen=True)
class Metrics:
    customers: int
    percent_customers: Decimal
    percent_revenue: Decimal
    average_receipt: Decimal | None
    total_value: Decimal


# --- Values (docs/segments.md#values) ---------------------------------------------------------


def fold(text: str) -> str:
    """Unicode lower case, each character on its own (simple case mapping: 'İ' is 'i'), with
    the final sigma read as a sigma — the doc's "Unicode lower case of both sides"."""
    lowered = "".join("i" if ch == "\u0130" else ch.lower() for ch in text)
    return lowered.replace("\u03c2", "\u03c3")


def _number(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise TypeError(value)
    return Decimal(str(value).strip())


def _day(value: Any) -> date:
    return date.fromisoformat(value.strip())


_ISO_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)


def _written_date(text: str) -> date | None:
    """The date written in the first ten characters of a text: a valid calendar date
    ``YYYY-MM-DD`` (years 0001-9999), else no value."""
    head = text[:10]
    if not _ISO_DAY.fullmatch(head):
        return None
    try:
        return date(int(head[:4]), int(head[5:7]), int(head[8:10]))
    except ValueError:
        return None


def _half_up(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


# --- Operators by value type (docs/segments.md#operators) -----------------------------------


def _string_holds(have: str, operator: str, value: Any) -> bool:
    if operator == "eq":
        return fold(have) == fold(value.strip())
    if operator == "contains":
        return fold(value.strip()) in fold(have)
    if operator == "starts_with":
        return fold(have).startswith(fold(value.strip()))
    if operator == "in_list":
        return fold(have) in {fold(v.strip()) for v in value}
    if operator == "is_empty":
        return have == ""
    raise NotImplementedError(f"string operator {operator}")


def _number_holds(have: Decimal, operator: str, value: Any) -> bool:
    if operator == "between":
        return _number(value[0]) <= have <= _number(value[1])
    want = _number(value)
    if operator == "eq":
        return have == want
    if operator == "gt":
        return have > want
    if operator == "gte":
        return have >= want
    if operator == "lt":
        return have < want
    if operator == "lte":
        return have <= want
    raise NotImplementedError(f"number operator {operator}")


def next_anniversary(day: date, today: date) -> date:
    """The next yearly anniversary of ``day`` on or after today (29 February falls on
    28 February in years without one)."""
    for year in (today.year, today.year + 1):
        try:
            candidate = date(year, day.month, day.day)
        except ValueError:  # 29 February in a year without one
            candidate = date(year, 2, 28)
        if candidate >= today:
            return candidate
    raise AssertionError("unreachable")  # pragma: no cover


def _date_holds(have: date, operator: str, value: Any, today: date) -> bool:
    if operator == "before":
        return have < _day(value)
    if operator == "after":
        return have > _day(value)
    if operator == "between":
        return _day(value[0]) <= have <= _day(value[1])
    if operator == "in_last_days":
        return today - timedelta(days=int(value)) <= have <= today
    if operator == "more_than_days_ago":
        return have < today - timedelta(days=int(value))
    if operator == "anniversary_within_days":
        return (next_anniversary(have, today) - today).days <= int(value)
    raise NotImplementedError(f"date operator {operator}")


def _scalar_holds(kind: str, have: Any, operator: str, value: Any, today: date) -> bool:
    if kind == "string":
        return _string_holds(have, operator, value)
    if kind in ("number", "money"):
        return _number_holds(have, operator, value)
    if kind == "date":
        return _date_holds(have, operator, value, today)
    if kind == "boolean":
        if operator != "is":
            raise NotImplementedError(f"boolean operator {operator}")
        return bool(have is value)
    if kind == "choice":
        if operator == "is":
            return bool(have == value)
        if operator == "in_list":
            return have in value
        raise NotImplementedError(f"choice operator {operator}")
    raise NotImplementedError(f"value type {kind}")


# The three exact exceptions of "Customers without a value": complements of another operator.
COMPLEMENTS = {"ne": "eq", "is_not": "is", "is_not_empty": "is_empty"}


# --- The oracle -------------------------------------------------------------------------------


class Oracle:
    """The contract in Python over one snapshot at one moment ``now``."""

    def __init__(self, snapshot: Snapshot, now: datetime, time_zone: str = "UTC") -> None:
        self.snapshot = snapshot
        self.tz = ZoneInfo(time_zone)
        self.now = now
        self.today = now.astimezone(self.tz).date()
        self.ids = {c.sc_id for c in snapshot.customers}
        self.receipts: dict[int, list[Receipt]] = defaultdict(list)
        for r in snapshot.receipts:
            self.receipts[r.customer_id].append(r)
        self.cards: dict[int, set[str]] = defaultdict(set)
        for card in snapshot.cards:
            self.cards[card.customer_id].add(card.status)
        self.events: dict[tuple[int, str], list[date]] = defaultdict(list)
        for e in snapshot.events:
            self.events[(e.customer_id, e.name)].append(self.local_date(e.occurred_at))
        self.audiences: dict[int, set[int]] = defaultdict(set)
        for audience_id, customer_id in snapshot.memberships:
            self.audiences[customer_id].add(audience_id)
        self._segment_cache: dict[int, set[int]] = {}
        self._condition_cache: dict[str, set[int]] = {}
        self._value_cache: dict[tuple[Any, ...], dict[int, Any]] = {}
        self._resolving: list[int] = []

    def local_date(self, moment: datetime) -> date:
        return moment.astimezone(self.tz).date()

    # -- trees

    def members(self, node: Any) -> set[int]:
        """The ids of the customers a rule (or one condition) matches."""
        if "field" in node:
            key = json.dumps(node, sort_keys=True, default=str)
            if key not in self._condition_cache:
                self._condition_cache[key] = {
                    c.sc_id for c in self.snapshot.customers if self.condition(node, c)
                }
            return self._condition_cache[key]
        parts = [self.members(child) for child in node.get("rules", [])]
        if not parts:
            found = set(self.ids)  # an empty group matches every customer
        elif node.get("op", "and") == "and":
            found = set.intersection(*parts)
        else:
            found = set.union(*parts)
        return self.ids - found if node.get("negate", False) else found

    # -- conditions

    def condition(self, cond: dict[str, Any], c: Customer) -> bool:
        """Does one customer match one condition?"""
        operator = cond["operator"]
        if operator in COMPLEMENTS:
            return not self.condition(dict(cond, operator=COMPLEMENTS[operator]), c)
        name = cond["field"]
        special = self._relations.get(name)
        if special is not None:
            return special(self, cond, c)
        kind = self.value_of(name)[0]
        have = self.value(cond, c)
        if have is None:  # no value: only is_empty holds
            return operator == "is_empty"
        return _scalar_holds(kind, have, operator, cond.get("value"), self.today)

    def value(self, cond: dict[str, Any], c: Customer) -> Any:
        """A customer's value of the condition's field (with its parameters), None for none."""
        key = (cond["field"], *(cond.get(p) for p in ("key", "event", "days")))
        if key not in self._value_cache:
            getter = self.value_of(cond["field"])[1]
            self._value_cache[key] = {
                x.sc_id: getter(self, cond, x) for x in self.snapshot.customers
            }
        return self._value_cache[key][c.sc_id]

    def value_of(self, name: str) -> tuple[str, Callable[[Oracle, dict[str, Any], Customer], Any]]:
        """The value type of a field and the function giving a customer's value (None: none)."""
        try:
            return _VALUES[name]
        except KeyError:
            raise NotImplementedError(f"the oracle has no case for field {name!r}") from None

    # -- receipts

    def receipt_list(self, c: Customer) -> list[Receipt]:
        return self.receipts.get(c.sc_id, [])

    def total(self, c: Customer) -> Decimal:
        return sum((r.amount for r in self.receipt_list(c)), Decimal(0))

    def recent(self, c: Customer, days: int) -> list[Receipt]:
        start = self.today - timedelta(days=days)
        return [r for r in self.receipt_list(c) if self.local_date(r.date) >= start]

    def first_last(self, c: Customer) -> tuple[date, date] | None:
        dates = [self.local_date(r.date) for r in self.receipt_list(c)]
        return (min(dates), max(dates)) if dates else None

    # -- relations that are not one value per customer

    def _card_status(self, cond: dict[str, Any], c: Customer) -> bool:
        statuses = self.cards.get(c.sc_id, set())
        operator, value = cond["operator"], cond["value"]
        if operator == "is":
            return value in statuses
        if operator == "in_list":
            return bool(statuses & set(value))
        raise NotImplementedError(f"cards.status operator {operator}")

    def _audience(self, cond: dict[str, Any], c: Customer) -> bool:
        member = cond["value"] in self.audiences.get(c.sc_id, set())
        if cond["operator"] == "in":
            return member
        if cond["operator"] == "not_in":
            return not member
        raise NotImplementedError(f"audience operator {cond['operator']}")

    def _audiences(self, cond: dict[str, Any], c: Customer) -> bool:
        mine = self.audiences.get(c.sc_id, set())
        if cond["operator"] == "in_any":
            return bool(mine & set(cond["value"]))
        if cond["operator"] == "in_none":
            return not mine & set(cond["value"])
        raise NotImplementedError(f"audiences operator {cond['operator']}")

    def _segment(self, cond: dict[str, Any], c: Customer) -> bool:
        member = c.sc_id in self.segment_members(cond["value"])
        if cond["operator"] == "in":
            return member
        if cond["operator"] == "not_in":
            return not member
        raise NotImplementedError(f"segment operator {cond['operator']}")

    def segment_members(self, segment_id: int) -> set[int]:
        if segment_id not in self._segment_cache:
            if segment_id in self._resolving:
                raise ValueError(f"segment cycle through {[*self._resolving, segment_id]}")
            self._resolving.append(segment_id)
            try:
                self._segment_cache[segment_id] = self.members(self.snapshot.segments[segment_id])
            finally:
                self._resolving.pop()
        return self._segment_cache[segment_id]

    _relations: dict[str, Callable[[Oracle, dict[str, Any], Customer], bool]] = {
        "cards.status": _card_status,
        "audience": _audience,
        "audiences": _audiences,
        "segment": _segment,
    }

    # -- metrics

    def metrics(self, rule: Any) -> Metrics:
        picked = self.members(rule)
        chosen = [c for c in self.snapshot.customers if c.sc_id in picked]
        total = sum((self.total(c) for c in chosen), Decimal(0))
        receipts = sum(len(self.receipt_list(c)) for c in chosen)
        everyone = sum((self.total(c) for c in self.snapshot.customers), Decimal(0))
        n_all = len(self.snapshot.customers)
        return Metrics(
            customers=len(chosen),
            percent_customers=_half_up(Decimal(len(chosen)) * 100 / n_all) if n_all else CENT * 0,
            percent_revenue=_half_up(total * 100 / everyone) if everyone else CENT * 0,
            average_receipt=_half_up(total / receipts) if receipts else None,
            total_value=total.quantize(CENT),
        )


# --- Field values (docs/segments.md#fields) ---------------------------------------------------

Getter = Callable[[Oracle, dict[str, Any], Customer], Any]


def _age(o: Oracle, cond: dict[str, Any], c: Customer) -> Decimal | None:
    born = c.birth_date
    if born is None:
        return None
    today = o.today
    # A 29 February birthday is reached on 1 March in other years: (2, 28) < (2, 29).
    return Decimal(today.year - born.year - ((today.month, today.day) < (born.month, born.day)))


def _attribute(kind: str) -> Getter:
    def get(o: Oracle, cond: dict[str, Any], c: Customer) -> Any:
        if cond["key"] not in c.attributes:
            return None
        value = c.attributes[cond["key"]]
        if kind == "string":
            return value if isinstance(value, str) else None
        if kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                return None
            return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
        if kind == "boolean":
            return value if isinstance(value, bool) else None
        if kind == "date":
            return _written_date(value) if isinstance(value, str) else None
        raise NotImplementedError(kind)

    return get


def _stats(which: str) -> Getter:
    def get(o: Oracle, cond: dict[str, Any], c: Customer) -> Any:
        receipts = o.receipt_list(c)
        n = len(receipts)
        if which == "count":
            return Decimal(n)
        if which == "total":
            return o.total(c)
        if not receipts:
            return None
        if which == "average_amount":
            return _half_up(o.total(c) / n)
        if which == "average_items":
            return _half_up(Decimal(sum(r.items for r in receipts)) / n)
        first, last = o.first_last(c) or (None, None)
        assert first is not None and last is not None
        return {
            "first": first,
            "last": last,
            "days_since_first": Decimal((o.today - first).days),
            "days_since_last": Decimal((o.today - last).days),
        }[which]

    return get


def _recent_count(o: Oracle, cond: dict[str, Any], c: Customer) -> Decimal:
    return Decimal(len(o.recent(c, int(cond["days"]))))


def _recent_amount(o: Oracle, cond: dict[str, Any], c: Customer) -> Decimal:
    return sum((r.amount for r in o.recent(c, int(cond["days"]))), Decimal(0))


def _event_count(o: Oracle, cond: dict[str, Any], c: Customer) -> Decimal:
    start = o.today - timedelta(days=int(cond["days"]))
    return Decimal(sum(1 for d in o.events.get((c.sc_id, cond["event"]), []) if d >= start))


def _event_days_since(o: Oracle, cond: dict[str, Any], c: Customer) -> Decimal | None:
    dates = o.events.get((c.sc_id, cond["event"]), [])
    return Decimal((o.today - max(dates)).days) if dates else None


def _gender(o: Oracle, cond: dict[str, Any], c: Customer) -> str:
    return {"m": "m", "f": "f", "": "unknown"}[c.gender]


_VALUES: dict[str, tuple[str, Getter]] = {
    "customer.gender": ("choice", _gender),
    "customer.age": ("number", _age),
    "customer.birth_date": ("date", lambda o, cond, c: c.birth_date),
    "customer.city": ("string", lambda o, cond, c: c.city or None),
    "customer.country": ("string", lambda o, cond, c: c.country),
    "customer.registered_at": ("date", lambda o, cond, c: o.local_date(c.registered_at)),
    "customer.days_since_registration": (
        "number",
        lambda o, cond, c: Decimal((o.today - o.local_date(c.registered_at)).days),
    ),
    "customer.has_phone": ("boolean", lambda o, cond, c: c.phone_raw != ""),
    "customer.phone_valid": ("boolean", lambda o, cond, c: bool(c.phone)),
    "customer.has_email": ("boolean", lambda o, cond, c: c.email_raw != ""),
    "customer.email_valid": ("boolean", lambda o, cond, c: bool(c.email)),
    "attribute.string": ("string", _attribute("string")),
    "attribute.number": ("number", _attribute("number")),
    "attribute.boolean": ("boolean", _attribute("boolean")),
    "attribute.date": ("date", _attribute("date")),
    "receipts.count": ("number", _stats("count")),
    "receipts.total_amount": ("money", _stats("total")),
    "receipts.average_amount": ("money", _stats("average_amount")),
    "receipts.average_items": ("number", _stats("average_items")),
    "receipts.first_date": ("date", _stats("first")),
    "receipts.last_date": ("date", _stats("last")),
    "receipts.days_since_first": ("number", _stats("days_since_first")),
    "receipts.days_since_last": ("number", _stats("days_since_last")),
    "receipts.count_recent": ("number", _recent_count),
    "receipts.amount_recent": ("money", _recent_amount),
    "cards.has_card": ("boolean", lambda o, cond, c: bool(o.cards.get(c.sc_id))),
    "events.count": ("number", _event_count),
    "events.days_since_last": ("number", _event_days_since),
}

RELATIONS = frozenset(Oracle._relations)
VALUE_FIELDS = frozenset(_VALUES)


def value_type(name: str) -> str:
    return _VALUES[name][0]


def customer_values(oracle: Oracle, cond: dict[str, Any]) -> list[Any]:
    """Every customer's value of a field (None: no value) — used to pick test values."""
    return [oracle.value(cond, c) for c in oracle.snapshot.customers]
