"""Membership expiry with a fake clock (docs/expiry.md): time-to-live per audience and per add,
re-adds, the sweep as one recorded operation per audience, undo, the history as of a date, the
profile, and sweepers running at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db import connection, connections
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from tagbase.accounts.models import Role
from tagbase.audiences import queries, services
from tagbase.audiences.models import (
    Audience,
    Membership,
    Operation,
    OperationAction,
    OperationKind,
    OperationStatus,
    RemovedMembership,
)
from tagbase.audiences.services import CustomerSelection
from tagbase.lib.sqlbits import in_list, list_param
from tagbase.testing import make_customers, make_user, system_actor

ACTOR = system_actor()
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)


class Clock:
    """A fake ``timezone.now``: it moves only when the test says so."""

    def __init__(self, at: datetime = START) -> None:
        self.now = at

    def advance(self, by: timedelta) -> datetime:
        self.now += by
        return self.now


@contextmanager
def fake_clock(at: datetime = START) -> Iterator[Clock]:
    clock = Clock(at)
    with mock.patch.object(timezone, "now", lambda: clock.now):
        yield clock


@pytest.fixture
def clock(db) -> Iterator[Clock]:  # type: ignore[no-untyped-def]
    with fake_clock() as c:
        yield c


def expiries(audience: Audience) -> dict[int, datetime | None]:
    return dict(
        Membership.objects.filter(audience=audience).values_list("customer_id", "expires_at")
    )


def add(audience: Audience, ids: list[int], **kw) -> Operation:  # type: ignore[no-untyped-def]
    return services.add_customers_to_audience(audience, ids, actor=ACTOR, kind="api", **kw)


def selection_of(ids: list[int], **kw) -> CustomerSelection:  # type: ignore[no-untyped-def]
    where = in_list(connection, "sc_id")
    sql = f"SELECT sc_id AS customer_id FROM customers_customer WHERE {where}"
    return CustomerSelection(sql, (list_param(connection, ids),), **kw)


# --- Setting the expiry -----------------------------------------------------------------------


def test_an_audience_default_ttl_sets_the_expiry_of_the_memberships_its_adds_set(clock):
    ids = make_customers(3)
    aud = services.create_audience("Trial", actor=ACTOR, member_ttl_days=30)
    assert aud.member_ttl_days == 30
    add(aud, ids)
    assert expiries(aud) == {i: START + 30 * DAY for i in ids}


def test_an_add_with_its_own_ttl_wins_over_the_audience_default(clock):
    ids = make_customers(2)
    aud = services.create_audience("Trial", actor=ACTOR, member_ttl_days=30)
    add(aud, ids[:1], ttl=7 * DAY)
    add(aud, ids[1:])
    assert expiries(aud) == {ids[0]: START + 7 * DAY, ids[1]: START + 30 * DAY}


def test_without_any_ttl_a_membership_never_expires(clock):
    ids = make_customers(2)
    aud = services.create_audience("VIP", actor=ACTOR)
    add(aud, ids)
    assert expiries(aud) == {ids[0]: None, ids[1]: None}
    assert services.expire_due_memberships(START + 10_000 * DAY) == []
    assert Operation.objects.filter(kind=OperationKind.EXPIRY).count() == 0


@override_settings(TAGBASE_MEMBERSHIP_CHUNK=2)
def test_an_add_in_chunks_sets_the_expiry_of_every_chunk(clock):
    ids = make_customers(5)
    aud = services.create_audience("Trial", actor=ACTOR)
    op = add(aud, ids, ttl=DAY)
    assert op.added == 5
    assert set(expiries(aud).values()) == {START + DAY}


@pytest.mark.parametrize("stage", [False, True])
def test_a_selection_add_sets_the_expiry(clock, stage):
    ids = make_customers(3)
    aud = services.create_audience("Trial", actor=ACTOR, member_ttl_days=2)
    op = add(aud, selection_of(ids, customers_only=True, stage=stage))  # type: ignore[arg-type]
    assert op.added == 3
    assert set(expiries(aud).values()) == {START + 2 * DAY}


def test_a_replace_sets_the_expiry_of_whom_it_adds_and_renews_whom_it_keeps(clock):
    ids = make_customers(3)
    aud = services.create_audience("Trial", actor=ACTOR)
    add(aud, ids[:2], ttl=DAY)
    clock.advance(DAY / 2)
    op = services.replace_audience_members(
        aud, selection_of(ids[1:]), actor=ACTOR, kind="set", ttl=3 * DAY
    )
    assert (op.added, op.already_member, op.removed) == (1, 1, 1)
    assert expiries(aud) == {ids[1]: clock.now + 3 * DAY, ids[2]: clock.now + 3 * DAY}
    gone = RemovedMembership.objects.get(removed_by=op)
    assert (gone.customer_id, gone.expires_at) == (ids[0], START + DAY)


def test_a_ttl_out_of_range_is_refused_before_anything_changes(clock):
    ids = make_customers(1)
    for days in (0, services.MAX_TTL_DAYS + 1):
        with pytest.raises(services.InvalidTtl) as refused:
            services.create_audience("Trial", actor=ACTOR, member_ttl_days=days)
        assert refused.value.field == "member_ttl_days"
    aud = services.create_audience("Trial", actor=ACTOR)
    for ttl in (timedelta(0), -DAY, (services.MAX_TTL_DAYS + 1) * DAY):
        with pytest.raises(services.InvalidTtl) as refused:
            add(aud, ids, ttl=ttl)
        assert refused.value.code == "ttl_invalid" and refused.value.field == "ttl"
    with pytest.raises(services.InvalidTtl):
        services.set_audience_member_ttl(aud, 0, actor=ACTOR)
    assert Operation.objects.filter(audience=aud).count() == 0


# --- Re-adding --------------------------------------------------------------------------------


@pytest.mark.parametrize("as_selection", [False, True])
def test_re_adding_a_member_restarts_its_clock_and_keeps_its_date_and_operation(
    clock, as_selection
):
    ids = make_customers(2)
    aud = services.create_audience("Trial", actor=ACTOR, member_ttl_days=30)
    first = add(aud, ids)
    clock.advance(20 * DAY)
    again = add(aud, selection_of(ids[:1]) if as_selection else ids[:1])  # type: ignore[arg-type]
    assert (again.added, again.already_member) == (0, 1)
    assert expiries(aud) == {ids[0]: clock.now + 30 * DAY, ids[1]: START + 30 * DAY}
    renewed = Membership.objects.get(audience=aud, customer_id=ids[0])
    assert (renewed.set_at, renewed.operation_id) == (START, first.pk)


def test_an_add_never_shortens_a_membership(clock):
    ids = make_customers(2)
    aud = services.create_audience("Trial", actor=ACTOR)
    add(aud, ids[:1], ttl=60 * DAY)
    add(aud, ids[1:])  # no expiry
    clock.advance(DAY)
    add(aud, ids, ttl=7 * DAY)
    assert expiries(aud) == {ids[0]: START + 60 * DAY, ids[1]: None}


def test_an_add_without_expiry_makes_an_expiring_membership_permanent(clock):
    ids = make_customers(2)
    aud = services.create_audience("Trial", actor=ACTOR)
    add(aud, ids, ttl=DAY)
    add(aud, selection_of(ids[:1]))  # type: ignore[arg-type]
    assert expiries(aud) == {ids[0]: None, ids[1]: START + DAY}


def test_re_adding_a_member_due_but_not_yet_swept_keeps_it(clock):
    ids = make_customers(1)
    aud = services.create_audience("Trial", actor=ACTOR, member_ttl_days=1)
    add(aud, ids)
    clock.advance(2 * DAY)
    add(aud, ids)
    assert services.expire_due_memberships() == []
    assert expiries(aud) == {ids[0]: clock.now + DAY}


def test_changing_the_audience_ttl_applies_to_later_adds_only(clock):
    ids = make_customers(3)
    aud = services.create_audience("Trial", actor=ACTOR, member_ttl_days=30)
    add(aud, ids[:1])
    aud = services.set_audience_member_ttl(aud, 5, actor=ACTOR)
    add(aud, ids[1:2])
    aud = services.set_audience_member_ttl(aud, None, actor=ACTOR)
    add(aud, ids[2:])
    assert Audience.objects.get(pk=aud.pk).member_ttl_days is None
    assert expiries(aud) == {ids[0]: START + 30 * DAY, ids[1]: START + 5 * DAY, ids[2]: None}


# --- The sweep --------------------------------------------------------------------------------


def test_the_sweep_removes_exactly_the_due_members_as_one_operation_per_audience(clock):
    ids = make_customers(6)
    trial = services.create_audience("Trial", actor=ACTOR, member_ttl_days=10)
    promo = services.create_audience("Promo", actor=ACTOR)
    calm = services.create_audience("Calm", actor=ACTOR)
    add(trial, ids[:3])  # due at START + 10 days
    add(promo, ids[2:4], ttl=5 * DAY)  # due at START + 5 days
    add(promo, ids[4:5], ttl=20 * DAY)  # not due
    add(promo, ids[5:])  # never
    add(calm, ids)  # never
    clock.advance(DAY)
    add(trial, ids[3:4])  # due at START + 11 days

    sweep_at = clock.advance(9 * DAY)  # START + 10 days: trial's first three and promo's two
    ops = services.expire_due_memberships()

    assert [(op.audience_id, op.removed) for op in ops] == [(trial.pk, 3), (promo.pk, 2)]
    for op in ops:
        op.refresh_from_db()
        assert (op.kind, op.action, op.status) == (
            OperationKind.EXPIRY,
            OperationAction.REMOVE,
            OperationStatus.SUCCEEDED,
        )
        assert (op.requested, op.not_member, op.actor_label) == (op.removed, 0, "expiry")
        assert op.created_at == sweep_at and op.can_undo
    assert set(expiries(trial)) == {ids[3]}
    assert set(expiries(promo)) == {ids[4], ids[5]}
    assert set(expiries(calm)) == set(ids)
    ledger = RemovedMembership.objects.filter(removed_by__in=ops)
    assert sorted((r.audience_id, r.customer_id, r.removed_at) for r in ledger) == sorted(
        [(trial.pk, i, sweep_at) for i in ids[:3]] + [(promo.pk, i, sweep_at) for i in ids[2:4]]
    )
    assert {r.customer_id: r.expires_at for r in ledger.filter(audience=promo)} == {
        ids[2]: START + 5 * DAY,
        ids[3]: START + 5 * DAY,
    }
    counts = dict(Audience.objects.values_list("pk", "member_count"))
    assert (counts[trial.pk], counts[promo.pk], counts[calm.pk]) == (1, 2, 6)

    # The same sweep again finds nothing: no empty operation.
    assert services.expire_due_memberships() == []
    clock.advance(DAY)
    assert [(op.audience_id, op.removed) for op in services.expire_due_memberships()] == [
        (trial.pk, 1)
    ]


def test_the_sweep_cutoff_is_inclusive_and_defaults_to_now(clock):
    ids = make_customers(2)
    aud = services.create_audience("Trial", actor=ACTOR)
    add(aud, ids[:1], ttl=DAY)
    add(aud, ids[1:], ttl=DAY + timedelta(microseconds=1))
    assert services.expire_due_memberships(START + DAY - timedelta(microseconds=1)) == []
    clock.advance(DAY)
    assert [op.removed for op in services.expire_due_memberships()] == [1]
    assert set(expiries(aud)) == {ids[1]}


def test_the_sweeper_thread_step_expires_memberships(transactional_db):
    from tagbase.web.sweeper import expire_memberships_once

    with fake_clock() as clock:
        ids = make_customers(2)
        aud = services.create_audience("Trial", actor=ACTOR, member_ttl_days=1)
        add(aud, ids)
        assert expire_memberships_once() == 0
        clock.advance(DAY)
        assert expire_memberships_once() == 1
    assert Audience.objects.get(pk=aud.pk).member_count == 0


# --- Undo -------------------------------------------------------------------------------------


def test_undoing_an_add_removes_its_members_with_their_expiry(clock):
    ids = make_customers(2)
    aud = services.create_audience("Trial", actor=ACTOR)
    op = add(aud, ids, ttl=DAY)
    undo = services.undo_operation(op, actor=ACTOR)
    assert undo.removed == 2 and expiries(aud) == {}
    clock.advance(2 * DAY)
    assert services.expire_due_memberships() == []


def test_undoing_an_expiry_brings_the_members_back_without_expiry(clock):
    ids = make_customers(3)
    aud = services.create_audience("Trial", actor=ACTOR, member_ttl_days=1)
    first = add(aud, ids)
    clock.advance(DAY)
    (expiry,) = services.expire_due_memberships()
    clock.advance(DAY)
    add(aud, ids[:1])  # back meanwhile by a new add: the undo skips it
    undo = services.undo_operation(expiry, actor=ACTOR)
    assert (undo.kind, undo.action, undo.requested, undo.added, undo.already_member) == (
        OperationKind.UNDO,
        OperationAction.ADD,
        3,
        2,
        1,
    )
    assert expiries(aud) == {ids[0]: clock.now + DAY, ids[1]: None, ids[2]: None}
    restored = Membership.objects.get(audience=aud, customer_id=ids[1])
    assert (restored.set_at, restored.operation_id) == (START, first.pk)
    assert Audience.objects.get(pk=aud.pk).member_count == 3
    clock.advance(10 * DAY)
    assert [op.removed for op in services.expire_due_memberships()] == [1]  # only the re-add


def test_undoing_a_remove_restores_an_expiry_still_ahead(clock):
    ids = make_customers(1)
    aud = services.create_audience("Trial", actor=ACTOR)
    add(aud, ids, ttl=10 * DAY)
    removal = services.remove_customers_from_audience(aud, ids, actor=ACTOR, kind="api")
    clock.advance(DAY)
    services.undo_operation(removal, actor=ACTOR)
    assert expiries(aud) == {ids[0]: START + 10 * DAY}


# --- History and profile ----------------------------------------------------------------------


def test_membership_as_of_a_date_sees_an_expired_member_until_the_sweep_and_after_its_undo(clock):
    ids = make_customers(2)
    aud = services.create_audience("Trial", actor=ACTOR)
    add(aud, ids[:1], ttl=DAY)
    add(aud, ids[1:])
    clock.advance(2 * DAY)  # due for a day, not yet swept: still a member
    (expiry,) = services.expire_due_memberships()
    clock.advance(DAY)
    undo = services.undo_operation(expiry, actor=ACTOR)
    tick = timedelta(microseconds=1)

    def as_of(at: datetime) -> set[int]:
        return set(queries.member_ids_as_of(aud.pk, at))

    assert as_of(START + DAY + tick) == set(ids)
    assert as_of(expiry.created_at - tick) == set(ids)
    assert as_of(expiry.created_at) == {ids[1]}
    assert as_of(undo.created_at - tick) == {ids[1]}
    assert as_of(undo.created_at) == set(ids)
    assert queries.count_members_as_of(aud.pk, expiry.created_at) == 1


def test_the_profile_lists_each_membership_with_its_expiry(clock):
    ids = make_customers(1)
    trial = services.create_audience("Trial", actor=ACTOR, member_ttl_days=30)
    vip = services.create_audience("VIP", actor=ACTOR)
    add(trial, ids)
    add(vip, ids)
    rows = {r["audience"].name: r["expires_at"] for r in queries.customer_memberships(ids[0])}  # type: ignore[attr-defined]
    assert rows == {"Trial": START + 30 * DAY, "VIP": None}


# --- Sweepers at once -------------------------------------------------------------------------


def _needs_shared_database() -> None:
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("concurrency needs a file database (scripts/run_tests.py sets one)")


@pytest.mark.django_db(transaction=True)
def test_sweepers_and_a_re_add_at_once_remove_each_due_member_once():
    """Three workers sweep the same due members of four audiences while an API client re-adds
    some of them: every due member leaves at most once, by one operation per audience; a
    re-added customer is a member at the end (renewed, or added again after its expiry)."""
    _needs_shared_database()
    ids = make_customers(40)
    with fake_clock(START):
        audiences = [
            services.create_audience(f"Trial {n}", actor=ACTOR, member_ttl_days=1) for n in range(4)
        ]
        for aud in audiences:
            add(aud, ids)
    cutoff = START + 2 * DAY
    start = threading.Barrier(4)
    errors: list[str] = []

    def sweeper() -> None:
        try:
            start.wait()
            services.expire_due_memberships(cutoff)
        except Exception as exc:  # collected and asserted on below
            errors.append(repr(exc))
        finally:
            connections.close_all()

    def re_adder() -> None:
        try:
            start.wait()
            for aud in audiences:
                add(aud, ids[:10], ttl=30 * DAY)
        except Exception as exc:  # collected and asserted on below
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=sweeper) for _ in range(3)]
    threads.append(threading.Thread(target=re_adder))
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    for aud in audiences:
        ops = list(Operation.objects.filter(audience=aud, kind=OperationKind.EXPIRY))
        assert len(ops) == 1  # customers 10-39 were due and nobody renewed them
        removed = list(
            RemovedMembership.objects.filter(audience=aud).values_list("customer_id", flat=True)
        )
        assert len(removed) == len(set(removed)) == sum(op.removed for op in ops)
        members = set(expiries(aud))
        assert set(ids[:10]) <= members
        assert members | set(removed) == set(ids) and set(removed) >= set(ids[10:])
        # A customer both removed and a member was re-added after the sweep, as a new member.
        assert Audience.objects.get(pk=aud.pk).member_count == len(members)


# --- Pages ------------------------------------------------------------------------------------


def _client(role: str) -> Client:
    client = Client()
    client.force_login(make_user(role))
    return client


def test_the_profile_shows_until_when_a_membership_lasts(clock):
    ids = make_customers(1)
    trial = services.create_audience("Trial", actor=ACTOR, member_ttl_days=30)
    vip = services.create_audience("VIP", actor=ACTOR)
    add(trial, ids)
    add(vip, ids)
    html = _client(Role.ANALYST).get(reverse("customers:customer_detail", args=[ids[0]]))
    text = html.content.decode()
    assert html.status_code == 200
    assert text.count("until <time") == 1
    assert 'until <time datetime="2025-03-31T09:00:00+00:00">31 Mar 2025, 09:00</time>' in text


def test_a_marketer_sets_and_clears_the_audience_ttl_on_its_page(clock):
    aud = services.create_audience("Trial", actor=ACTOR)
    client = _client(Role.MARKETER)
    page = reverse("audiences:audience_detail", args=[aud.pk])
    url = reverse("audiences:audience_expiry", args=[aud.pk])
    assert "Membership expiry" in client.get(page).content.decode()
    response = client.post(url, {"member_ttl_days": "30"})
    assert response.status_code == 302 and response["Location"] == page
    assert Audience.objects.get(pk=aud.pk).member_ttl_days == 30
    shown = client.get(page).content.decode()
    assert "30 days <small>after each add</small>" in shown
    refused = client.post(url, {"member_ttl_days": "0"})
    assert refused.status_code == 200 and "greater than or equal to 1" in refused.content.decode()
    assert client.post(url, {"member_ttl_days": ""}).status_code == 302
    assert Audience.objects.get(pk=aud.pk).member_ttl_days is None
    assert client.get(url).status_code == 302  # a reload goes to the page


def test_analysts_may_not_change_the_ttl_and_see_no_form(clock):
    aud = services.create_audience("Trial", actor=ACTOR, member_ttl_days=7)
    client = _client(Role.ANALYST)
    url = reverse("audiences:audience_expiry", args=[aud.pk])
    assert client.post(url, {"member_ttl_days": "1"}).status_code == 403
    page = client.get(reverse("audiences:audience_detail", args=[aud.pk])).content.decode()
    assert "Membership expiry" not in page and "7 days <small>after each add</small>" in page
    assert Audience.objects.get(pk=aud.pk).member_ttl_days == 7


def test_creating_an_audience_and_pasting_ids_with_a_ttl_in_the_ui(clock):
    ids = make_customers(2)
    client = _client(Role.MARKETER)
    client.post(reverse("audiences:audience_create"), {"name": "Trial", "member_ttl_days": "10"})
    aud = Audience.objects.get(name="Trial")
    assert aud.member_ttl_days == 10
    change = reverse("audiences:audience_members_change", args=[aud.pk])
    paste = {"action": "add", "id_type": "sc_id", "identifiers": str(ids[0]), "ttl_days": "3"}
    assert client.post(change, paste).status_code == 200
    paste = {"action": "add", "id_type": "sc_id", "identifiers": str(ids[1]), "ttl_days": ""}
    page = client.post(change, paste).content.decode()
    assert expiries(aud) == {ids[0]: START + 3 * DAY, ids[1]: START + 10 * DAY}
    assert page.count("<small>until <time") == 2
