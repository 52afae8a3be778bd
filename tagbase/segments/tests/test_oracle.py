"""The compiler against the oracle (``oracle.py``, written from docs/segments.md) over the edge
data set (``edge_data.py``), on this engine.

1. Every operator of every field of the catalogue (iterated, so a new one is covered or fails),
   with every parameter set and several values picked from the data around its boundaries, at
   several "now"s and time zones: each condition as a column of a batch query (never NULL, equal
   to the oracle), and a sample through ``members`` — read whole and as a page — alone and in a
   negated group.
2. Random nested rule trees (Hypothesis): members and metrics.
3. The five metrics.

With TAGBASE_LONG_TESTS=1 every picked value goes through ``members`` and Hypothesis tries many
more trees. The data set is written once per module, in a transaction rolled back at the end.
"""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction
from django.db.models import BooleanField, ExpressionWrapper
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagbase.customers.models import Customer
from tagbase.segments import compiler
from tagbase.segments.catalogue import FIELDS, Field
from tagbase.segments.rules import RuleError, validate
from tagbase.segments.tests import edge_data
from tagbase.segments.tests.oracle import (
    Oracle,
    Snapshot,
    customer_values,
    fold,
    next_anniversary,
)

pytestmark = pytest.mark.django_db

SCENARIOS = edge_data.SCENARIOS
SCENARIO_IDS = [f"{zone}@{now:%Y-%m-%dT%H:%M}" for zone, now in SCENARIOS]
LONG = os.environ.get("TAGBASE_LONG_TESTS") == "1"
# Values tried per operator and parameter set (at most): at the first "now", at the others.
PER_OPERATOR = (10_000, 10_000) if LONG else (12, 4)
BATCH = 50  # conditions evaluated in one query


@pytest.fixture(scope="module")
def data(django_db_setup: Any, django_db_blocker: Any) -> Iterator[Snapshot]:
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield edge_data.load()
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


# --- Test values picked from the data ---------------------------------------------------------


def _valid(cond: dict[str, Any]) -> bool:
    try:
        validate({"op": "and", "rules": [cond]})
    except RuleError:
        return False
    return True


def _spread(values: list[Any], step: Any) -> tuple[list[Any], list[Any]]:
    """The smallest, middle and largest of the observed values, and their neighbours (± step)."""
    if not values:
        return [], []
    ordered = sorted(set(values))
    low, mid, high = ordered[0], ordered[len(ordered) // 2], ordered[-1]
    first, rest = [low, mid, high], []
    for v in (low, high):
        for near in (-step, step):
            with contextlib.suppress(OverflowError):  # next to date.min / date.max
                first.append(v + near)
    for near in (-step, step):
        rest.append(mid + near)
    return first, rest


def _json(value: Any) -> Any:
    if isinstance(value, list):
        return [_json(v) for v in value]
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _params(f: Field, snapshot: Snapshot) -> list[dict[str, Any]]:
    """Every parameter set worth trying for a field."""
    if not f.params:
        return [{}]
    if f.params == ("key",):
        keys = sorted({k for c in snapshot.customers for k in c.attributes})
        return [{"key": k} for k in [*keys, "no.such-key"]]
    if f.params == ("days",):
        return [{"days": d} for d in (*edge_data.WINDOWS, 3650)]
    if f.params == ("event",):
        return [{"event": e} for e in (*edge_data.EVENT_NAMES, "never")]
    if f.params == ("event", "days"):
        combos = [{"event": e, "days": 30} for e in (*edge_data.EVENT_NAMES, "never")]
        return combos + [{"event": "app_login", "days": d} for d in (1, 365)]
    raise NotImplementedError(f"no test parameters for {f.id}: {f.params}")


def _strings(observed: list[str], operator: str) -> tuple[list[str], list[str]]:
    """Texts the customers have, in other cases, with spaces around, cut; LIKE's wildcards."""
    texts = sorted({t for t in observed if t.strip()})
    whole: set[str] = {"no such text"}
    parts: set[str] = {"%", "_", "\\", "o", "% off"}
    for t in texts:
        whole |= {t, t.upper(), fold(t), f"  {t}  "}
        parts |= {t.strip()[:2], t.strip()[1:4], t.upper()[-3:]}
    first, rest = (parts, whole) if operator in ("contains", "starts_with") else (whole, parts)
    return sorted(first), sorted(rest - first)


def _pairs(first: list[Any], rest: list[Any]) -> tuple[list[Any], list[Any]]:
    """[low, high] values: the widest and single-value ranges first, then any others."""
    ordered = sorted(set(first))
    top = [[ordered[0], ordered[-1]]] + [[v, v] for v in ordered] if ordered else []
    everything = sorted(set(first) | set(rest))
    return top, [[a, b] for a in everything for b in everything if a <= b]


def _values(
    f: Field, operator: str, arity: str, o: Oracle, base: dict[str, Any]
) -> tuple[list[Any], list[Any]]:
    """Candidate values for one operator (not yet validated): those always tried — around the
    smallest, middle and largest values the customers have — and others to sample from."""
    snapshot = o.snapshot
    if f.type in ("audience", "segment"):
        ids = snapshot.audiences if f.type == "audience" else snapshot.segment_ids
        return sorted(ids.values()), []
    if f.type == "audiences":
        ids = sorted(snapshot.audiences.values())
        return [[i] for i in ids] + [ids[:2], ids], []
    if f.type == "choice":
        choices = [v for v, _ in f.choices]
        if arity == "list":
            return [[c] for c in choices] + [choices[:2], choices[1:], choices], []
        return choices, []
    if f.type == "boolean":
        return [True, False], []
    observed = [v for v in customer_values(o, {"field": f.id, **base}) if v is not None]
    if f.type == "string":
        if arity == "none":
            return [None], []
        first, rest = _strings(observed, operator)
        if arity == "list":
            rng = random.Random(f"{f.id}{base}")
            pool = first + rest
            return [rng.sample(pool, min(k, len(pool))) for k in (1, 2, 3, 4)], []
        return first, rest
    if f.type in ("number", "money"):
        step = Decimal(1) if f.whole else Decimal("0.01")
        first, rest = _spread([Decimal(v) for v in observed], step)
        first.append(Decimal(0))
        rest += [Decimal(v) for v in observed] + [Decimal("0.5"), Decimal("-0.01")]
        if f.whole:
            first = [int(v) for v in first if v == int(v)]
            rest = [int(v) for v in rest if v == int(v)]
        return _pairs(first, rest) if arity == "two" else (first, rest)
    if f.type == "date":
        today = o.today
        if arity == "days":
            gaps = set()
            for d in observed:
                gap = abs((today - d).days)
                if operator == "anniversary_within_days":
                    gap = (next_anniversary(d, today) - today).days
                gaps |= {gap - 1, gap, gap + 1}
            return [0, 1, 2, 30, 58, 59, 364, 365, 366], sorted(gaps)
        first, rest = _spread(observed, timedelta(days=1))
        first += [today - timedelta(days=1), today, today + timedelta(days=1)]
        rest += observed
        return _pairs(first, rest) if arity == "two" else (first, rest)
    raise NotImplementedError(f"no test values for type {f.type}")


def conditions_for(f: Field, o: Oracle, per_operator: int) -> list[list[dict[str, Any]]]:
    """Valid conditions over every operator and parameter set of a field: one list per operator
    and parameter set, of at most ``per_operator`` values (those always tried first)."""
    found = []
    for base in _params(f, o.snapshot):
        for operator in f.operators.values():
            first, rest = _values(f, operator.id, operator.arity, o, base)
            rng = random.Random(f"{f.id}|{operator.id}|{sorted(base.items())}")
            if len(first) > per_operator:
                first = rng.sample(first, per_operator)
            rng.shuffle(rest)
            made: list[dict[str, Any]] = []
            seen: set[str] = set()
            for value in first + rest:
                if len(made) == per_operator:
                    break
                cond = {"field": f.id, "operator": operator.id, **base}
                if value is not None:
                    cond["value"] = _json(value)
                if repr(cond) not in seen and _valid(cond):
                    seen.add(repr(cond))
                    made.append(cond)
            found.append(made)
    return found


# --- Comparing --------------------------------------------------------------------------------


def compiled_ids(tree: dict[str, Any], now: datetime) -> tuple[set[int], set[int]]:
    """The members, read whole and as one page (a query with LIMIT, which may be compiled
    differently: see catalogue.HasRows)."""
    qs = compiler.members(validate(tree), now=now).order_by("sc_id")
    ids = qs.values_list("sc_id", flat=True)
    return set(ids), set(ids[:100_000])


def compiled_columns(conds: list[dict[str, Any]], now: datetime) -> list[dict[int, Any]]:
    """Each condition's compiled SQL as a column of one query per batch: for every condition,
    every customer's value — True, False, or None (SQL NULL, which a condition must never be)."""
    found: list[dict[int, Any]] = []
    for start in range(0, len(conds), BATCH):
        chunk = conds[start : start + BATCH]
        columns = {
            f"c{i}": ExpressionWrapper(
                compiler.condition_q(validate(_group(cond)), now=now), output_field=BooleanField()
            )
            for i, cond in enumerate(chunk)
        }
        rows = list(Customer.objects.annotate(**columns).values_list("sc_id", *columns))
        found += [{row[0]: row[i + 1] for row in rows} for i in range(len(chunk))]
    return found


def _explain(o: Oracle, tree: dict[str, Any], ids: set[int]) -> str:
    """A few of these customers with the oracle's values of the tree's top conditions."""
    rows = []
    conds = [tree] if "field" in tree else [n for n in tree["rules"] if "field" in n]
    for c in [c for c in o.snapshot.customers if c.sc_id in ids][:4]:
        shown = {}
        for cond in conds:
            try:
                shown[cond["field"]] = o.value(cond, c)
            except NotImplementedError:  # cards, audiences, segments: no single value
                shown[cond["field"]] = "(relation)"
        rows.append(f"    customer {c.sc_id}: {shown} {c}")
    return "\n".join(rows)


def mismatch(o: Oracle, tree: dict[str, Any], now: datetime) -> str | None:
    expected = o.members(tree)
    got, page = compiled_ids(tree, now)
    if got == expected == page:
        return None
    missing, extra = expected - got, got - expected
    return (
        f"{tree}\n  missing {sorted(missing)[:10]}, extra {sorted(extra)[:10]}; as a page:"
        f" missing {sorted(expected - page)[:10]}, extra {sorted(page - expected)[:10]}\n"
        + _explain(o, tree, missing | extra | (page ^ expected))
    )


def _group(*rules: Any, op: str = "and", negate: bool = False) -> dict[str, Any]:
    return {"op": op, "negate": negate, "rules": list(rules)}


# --- 1. Every operator of every field -------------------------------------------------------


@pytest.mark.parametrize("scenario", range(len(SCENARIOS)), ids=SCENARIO_IDS)
@pytest.mark.parametrize("field_id", sorted(FIELDS))
def test_every_operator_of_every_field_agrees_with_the_oracle(
    data: Snapshot, field_id: str, scenario: int, settings: Any
) -> None:
    """All picked values as columns of a batch query (never NULL, equal to the oracle), and
    some through ``members`` alone and in a negated group (all of them at the first "now")."""
    zone, now = SCENARIOS[scenario]
    settings.TIME_ZONE = zone
    o = Oracle(data, now, zone)
    f = FIELDS[field_id]
    lists = conditions_for(f, o, PER_OPERATOR[min(scenario, 1)])
    conds = [c for made in lists for c in made]
    covered = {c["operator"] for c in conds}
    assert covered == set(f.operators), f"no valid test values for {set(f.operators) - covered}"
    failures = []
    for cond, column in zip(conds, compiled_columns(conds, now), strict=True):
        nulls = sorted(i for i, v in column.items() if v is None)
        got = {i for i, v in column.items() if v}
        expected = o.members(cond)
        if nulls or got != expected:
            failures.append(
                f"{cond} as a column: NULL for {nulls[:10]}, missing"
                f" {sorted(expected - got)[:10]}, extra {sorted(got - expected)[:10]}\n"
                + _explain(o, cond, (expected ^ got) | set(nulls))
            )
    rng = random.Random(f"{field_id}{scenario}")
    through_members = [rng.choice(made) for made in lists if made]
    if scenario:  # the other "now"s: one parameter set per operator
        through_members = [rng.choice(made) for made in _by_operator(through_members).values()]
    if LONG:
        through_members = conds
    for cond in through_members:
        for tree in (_group(cond), _group(cond, negate=True)):
            problem = mismatch(o, tree, now)
            if problem:
                failures.append(problem)
    assert not failures, f"{len(failures)} disagree:\n" + "\n".join(failures[:8])


def _by_operator(conds: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for cond in conds:
        found.setdefault(cond["operator"], []).append(cond)
    return found


def test_groups_empty_or_not_at_any_depth(data: Snapshot, settings: Any) -> None:
    zone, now = SCENARIOS[0]
    settings.TIME_ZONE = zone
    o = Oracle(data, now, zone)
    city = {"field": "customer.city", "operator": "eq", "value": "Moscow"}
    trees = [
        _group(),
        _group(negate=True),
        _group(_group(), op="or"),
        _group(city, _group(), op="or"),
        _group(city, _group()),
        _group(city, _group(negate=True), op="or"),
        _group(city, _group(_group(negate=True), negate=True)),
        _group(_group(_group(_group(op="or"))), city, op="or"),
        _group(city, _group(_group(), op="or", negate=True), op="or"),
    ]
    everyone = {c.sc_id for c in data.customers}
    assert o.members(_group(city, _group(), op="or")) == everyone  # the oracle reads the doc so
    failures = [p for t in trees if (p := mismatch(o, t, now))]
    assert not failures, "\n".join(failures)


# --- 2. Random rule trees -------------------------------------------------------------------

_POOLS: dict[tuple[int, int], list[dict[str, Any]]] = {}


def _pool(data: Snapshot, scenario: int) -> list[dict[str, Any]]:
    """Conditions of every field (a sample per field) for random trees."""
    if (id(data), scenario) not in _POOLS:
        zone, now = SCENARIOS[scenario]
        o = Oracle(data, now, zone)
        pool = []
        for field_id in sorted(FIELDS):
            conds = [c for made in conditions_for(FIELDS[field_id], o, 3) for c in made]
            pool += random.Random(field_id).sample(conds, min(len(conds), 12))
        _POOLS[(id(data), scenario)] = pool
    return _POOLS[(id(data), scenario)]


def _trees(leaf: st.SearchStrategy[Any], depth: int = 1) -> st.SearchStrategy[Any]:
    """A group at level ``depth``; groups nest at most 4 levels."""
    child = leaf if depth >= 4 else st.one_of(leaf, leaf, _trees(leaf, depth + 1))
    return st.builds(
        lambda op, negate, rules: {"op": op, "negate": negate, "rules": rules},
        st.sampled_from(["and", "or"]),
        st.booleans(),
        st.lists(child, max_size=(4, 3, 3, 2)[depth - 1]),  # at most 72 conditions
    )


@st.composite
def scenario_and_tree(draw: st.DrawFn, data: Snapshot) -> tuple[int, dict[str, Any]]:
    scenario = draw(st.integers(0, len(SCENARIOS) - 1))
    pool = _pool(data, scenario)
    leaf = st.integers(0, len(pool) - 1).map(lambda i: pool[i])
    return scenario, draw(_trees(leaf))


def _check_tree(data: Snapshot, scenario: int, tree: dict[str, Any]) -> None:
    zone, now = SCENARIOS[scenario]
    with override_settings(TIME_ZONE=zone):
        o = Oracle(data, now, zone)
        problem = mismatch(o, tree, now)
        assert problem is None, problem
        assert compiler.metrics(validate(tree), now=now).__dict__ == o.metrics(tree).__dict__


_HYPOTHESIS = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}


def test_random_rule_trees_agree_with_the_oracle(data: Snapshot) -> None:
    @settings(max_examples=40, derandomize=True, database=None, **_HYPOTHESIS)  # type: ignore[arg-type]
    @given(st.data())
    def run(draw: st.DataObject) -> None:
        scenario, tree = draw.draw(scenario_and_tree(data))
        _check_tree(data, scenario, tree)

    run()


@pytest.mark.slow
def test_many_more_random_rule_trees_agree_with_the_oracle(data: Snapshot) -> None:
    examples = int(os.environ.get("TAGBASE_ORACLE_EXAMPLES", "1500"))

    @settings(max_examples=examples, **_HYPOTHESIS)  # type: ignore[arg-type]
    @given(st.data())
    def run(draw: st.DataObject) -> None:
        scenario, tree = draw.draw(scenario_and_tree(data))
        _check_tree(data, scenario, tree)

    run()


# --- 3. Metrics -------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", range(len(SCENARIOS)), ids=SCENARIO_IDS)
def test_the_five_metrics_agree_with_the_oracle(
    data: Snapshot, scenario: int, settings: Any
) -> None:
    zone, now = SCENARIOS[scenario]
    settings.TIME_ZONE = zone
    o = Oracle(data, now, zone)
    trees = [_group(), _group(negate=True)]
    trees += [_group({"field": "segment", "operator": "in", "value": i}) for i in data.segments]
    trees += [_group(c) for c in random.Random(scenario).sample(_pool(data, scenario), 30)]
    failures = []
    for tree in trees:
        got = compiler.metrics(validate(tree), now=now).__dict__
        want = o.metrics(tree).__dict__
        if got != want:
            failures.append(f"{tree}\n  compiler {got}\n  oracle   {want}")
    assert not failures, "\n".join(failures[:5])
    everyone = o.metrics(_group())
    assert everyone.percent_customers == Decimal("100.00")
    assert everyone.total_value > 0 and everyone.average_receipt is not None
