"""Membership as of a past moment against a replayed history, on this engine.

Hypothesis (derandomised, few examples) draws a random sequence of adds, removes, replaces
and undos of earlier operations on one audience of a few customers, each timed by a fake clock
that sometimes does not move (operations at the same instant). A plain Python model of the
write path replays the same sequence forward (who is a member, set by which operation; what
each operation removed) and gives the members after every operation. The reconstruction
(``audiences.queries.members_as_of_sql``) must then give, at every operation's moment, just
before it and before the first one, exactly the replayed set — through the count, the keyset
pages and the export alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

import pytest
from django.db import connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tagbase.accounts.actors import Actor
from tagbase.audiences import queries
from tagbase.audiences.models import Membership, Operation
from tagbase.audiences.services import (
    CannotUndo,
    CustomerSelection,
    add_customers_to_audience,
    create_audience,
    remove_customers_from_audience,
    replace_audience_members,
    undo_operation,
)
from tagbase.lib.sqlbits import in_list, list_param
from tagbase.testing import make_customers

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
N = 6
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


# --- The model: the write path replayed in Python ----------------------------------------------


@dataclass
class Model:
    members: dict[int, tuple[datetime, int]] = field(default_factory=dict)  # customer -> set
    removed_by: dict[int, dict[int, tuple[datetime, int]]] = field(default_factory=dict)
    actions: dict[int, str] = field(default_factory=dict)
    undone: set[int] = field(default_factory=set)

    def add(self, op: int, at: datetime, ids: set[int]) -> None:
        self.actions[op] = "add"
        for c in ids - set(self.members):
            self.members[c] = (at, op)

    def remove(self, op: int, ids: set[int]) -> None:
        self.actions[op] = "remove"
        self.removed_by[op] = {c: self.members.pop(c) for c in ids & set(self.members)}

    def replace(self, op: int, at: datetime, ids: set[int]) -> None:
        self.actions[op] = "replace"
        self.removed_by[op] = {c: self.members.pop(c) for c in set(self.members) - ids}
        for c in ids - set(self.members):
            self.members[c] = (at, op)

    def undo(self, undo: int, op: int) -> None:
        self.actions[undo] = "undo"
        self.undone.add(op)
        if self.actions[op] in ("add", "replace"):
            mine = {c for c, (_, by) in self.members.items() if by == op}
            self.removed_by[undo] = {c: self.members.pop(c) for c in mine}
        if self.actions[op] in ("remove", "replace"):
            for c, row in self.removed_by[op].items():
                self.members.setdefault(c, row)


# --- Steps ----------------------------------------------------------------------------------

SUBSETS = st.frozensets(st.integers(0, N - 1), max_size=N)
STEP = st.one_of(
    st.tuples(st.sampled_from(["add", "remove", "replace"]), SUBSETS, st.integers(0, 1)),
    st.tuples(st.just("undo"), st.integers(0, 30), st.integers(0, 1)),
)


def selection_of(ids: list[int]) -> CustomerSelection:
    sql = (
        f"SELECT sc_id AS customer_id FROM customers_customer WHERE {in_list(connection, 'sc_id')}"
    )
    return CustomerSelection(sql, (list_param(connection, ids),), customers_only=True)


def replay(steps: list[tuple[str, Any, int]]) -> None:
    ids = make_customers(N)
    clock = {"now": START}
    with mock.patch.object(timezone, "now", lambda: clock["now"]):
        audience = create_audience("VIP", actor=ACTOR)
        model = Model()
        history: list[tuple[datetime, set[int]]] = []  # (operation time, members after it)
        done: list[int] = []  # operations that can be picked for undo, in order
        for kind, arg, tick in steps:
            clock["now"] += timedelta(seconds=tick)
            at = clock["now"]
            if kind == "undo":
                if not done:
                    continue
                target = done[arg % len(done)]
                try:
                    op = undo_operation(Operation.objects.get(pk=target), actor=ACTOR)
                except CannotUndo:
                    assert target in model.undone
                    continue
                model.undo(op.pk, target)
            else:
                chosen = [ids[i] for i in sorted(arg)]
                if kind == "add":
                    op = add_customers_to_audience(audience, chosen, actor=ACTOR, kind="api")
                    model.add(op.pk, at, set(chosen))
                elif kind == "remove":
                    op = remove_customers_from_audience(audience, chosen, actor=ACTOR, kind="api")
                    model.remove(op.pk, set(chosen))
                else:
                    op = replace_audience_members(
                        audience, selection_of(chosen), actor=ACTOR, kind="set"
                    )
                    model.replace(op.pk, at, set(chosen))
                done.append(op.pk)
            assert op.created_at == at
            history.append((at, set(model.members)))
        now = set(
            Membership.objects.filter(audience_id=audience.pk).values_list("customer_id", flat=True)
        )
        assert now == set(model.members), "the model replays the write path"

    moments = {START - timedelta(seconds=1)}
    for at, _ in history:
        moments |= {at, at - timedelta(microseconds=1), at + timedelta(microseconds=1)}
    for moment in sorted(moments):
        after = [members for at, members in history if at <= moment]
        expected = after[-1] if after else set()
        assert _as_of(audience.pk, moment) == expected, moment


def _as_of(audience_id: int, at: datetime) -> set[int]:
    count = queries.count_members_as_of(audience_id, at)
    paged: list[int] = []
    while page := queries.member_ids_as_of(audience_id, at, paged[-1] if paged else 0, limit=2):
        paged += page
    exported = [int(v) for v in queries.iter_identifiers_as_of(audience_id, at, "sc_id")]
    assert paged == sorted(set(paged)) and exported == paged and count == len(paged)
    return set(paged)


@settings(
    max_examples=30,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(st.lists(STEP, min_size=1, max_size=14))
# Removed, re-added by another operation, then the removal undone: the undo skips the customer.
@example(
    [
        ("add", frozenset({0, 1}), 1),
        ("remove", frozenset({0}), 1),
        ("add", frozenset({0}), 1),
        ("undo", 1, 1),
        ("remove", frozenset({0, 1}), 1),
    ]
)
# Removed, the removal undone (a restored row keeps its old date), removed and restored again.
@example(
    [
        ("add", frozenset({0, 1}), 1),
        ("remove", frozenset({0}), 1),
        ("undo", 1, 1),
        ("remove", frozenset({0}), 1),
        ("undo", 2, 1),
        ("add", frozenset({0}), 1),
    ]
)
# A replace, then undone; everything at one instant.
@example(
    [
        ("add", frozenset({0, 1, 2}), 1),
        ("replace", frozenset({2, 3}), 0),
        ("undo", 1, 0),
        ("remove", frozenset({0}), 0),
    ]
)
def test_membership_as_of_any_past_moment_equals_the_replayed_history(steps: list) -> None:  # type: ignore[type-arg]
    with transaction.atomic():
        replay(steps)
        transaction.set_rollback(True)
