"""Each trigger: event triggers through the customers signals (a load enqueues the campaign's
work; nothing is queued when no active campaign listens), scheduled ones through the tick."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from tagbase.campaigns import engine, receivers, services
from tagbase.campaigns.models import Batch, Entry
from tagbase.campaigns.tasks import tick
from tagbase.campaigns.tests.builders import ACTOR, chain, make_campaign, node
from tagbase.campaigns.triggers.repeat import RepeatDate
from tagbase.customers.models import Customer
from tagbase.customers.services import load_receipts, record_events, upsert_customers
from tagbase.customers.signals import EventFact, ReceiptFact
from tagbase.segments.services import create_segment
from tagbase.testing import make_customer

pytestmark = pytest.mark.django_db
IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
W = node("w", "wait", amount=1, unit="days")


def _entered(campaign) -> set[int]:  # type: ignore[no-untyped-def]
    return set(Entry.objects.filter(campaign=campaign).values_list("customer_id", flat=True))


@override_settings(TASKS=IMMEDIATE)
def test_customer_registered_fires_for_created_customers_only(django_capture_on_commit_callbacks):
    campaign = make_campaign(chain(node("t", "customer_registered"), W))
    with django_capture_on_commit_callbacks(execute=True):
        upsert_customers([{"external_id": "e1"}, {"external_id": "e2"}], actor=ACTOR)
    with django_capture_on_commit_callbacks(execute=True):
        upsert_customers([{"external_id": "e1", "city": "Omsk"}], actor=ACTOR)  # an update
    assert _entered(campaign) == set(Customer.objects.values_list("sc_id", flat=True))
    assert Batch.objects.filter(campaign=campaign).count() == 1


@override_settings(TASKS=IMMEDIATE)
def test_receipt_issued_honours_the_minimum_and_ignores_reloads(django_capture_on_commit_callbacks):
    a, b = make_customer(), make_customer()
    campaign = make_campaign(chain(node("t", "receipt_issued", min_amount="1000"), W))
    rows = [
        {"sc_id": a.pk, "number": "1", "date": "2030-01-01T10:00:00Z", "amount": "1000.00"},
        {"sc_id": b.pk, "number": "2", "date": "2030-01-01T10:00:00Z", "amount": "999.99"},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        load_receipts(rows, actor=ACTOR)
    with django_capture_on_commit_callbacks(execute=True):
        load_receipts(rows, actor=ACTOR)  # the same receipts again: no new receipt
    assert _entered(campaign) == {a.pk}
    assert Entry.objects.filter(campaign=campaign).count() == 1


@override_settings(TASKS=IMMEDIATE)
def test_event_occurred_matches_the_name_and_the_payload(django_capture_on_commit_callbacks):
    a, b, c = make_customer(), make_customer(), make_customer()
    campaign = make_campaign(
        chain(node("t", "event_occurred", name="app_login", payload={"os": "ios"}), W)
    )
    with django_capture_on_commit_callbacks(execute=True):
        record_events(
            [
                {"sc_id": a.pk, "name": "app_login", "payload": {"os": "ios", "v": 2}},
                {"sc_id": b.pk, "name": "app_login", "payload": {"os": "android"}},
                {"sc_id": c.pk, "name": "visit", "payload": {"os": "ios"}},
            ],
            actor=ACTOR,
        )
    assert _entered(campaign) == {a.pk}


def test_receivers_make_one_query_and_queue_nothing_without_a_listening_campaign(
    django_assert_num_queries,
):
    make_campaign(chain(node("t", "customer_registered"), W))  # listens to another signal
    make_campaign(chain(node("t", "receipt_issued"), W), active=False)
    fact = ReceiptFact(customer_id=1, number="1", amount=None, date=None)
    with django_assert_num_queries(1):
        assert receivers.on_receipts(None, receipts=[fact]) == []
    with django_assert_num_queries(1):
        assert receivers.on_events(None, events=[EventFact(1, "x", {}, None)]) == []


def test_date_fires_once_when_the_moment_has_come():
    customers = {make_customer().pk for _ in range(3)}
    at = timezone.now() + timedelta(hours=1)
    campaign = make_campaign(chain(node("t", "date", at=at.isoformat()), W))
    assert tick(now=at - timedelta(minutes=1))["batches"] == []
    fired = tick(now=at + timedelta(minutes=1))["batches"]
    assert len(fired) == 1 and _entered(campaign) == customers
    assert tick(now=at + timedelta(minutes=2))["batches"] == []


def test_a_date_passed_before_activation_does_not_fire():
    make_customer()
    at = timezone.now() - timedelta(hours=1)
    make_campaign(chain(node("t", "date", at=at.isoformat()), W))
    assert tick(now=timezone.now() + timedelta(minutes=1))["batches"] == []


@pytest.mark.parametrize(
    ("params", "now", "last"),
    [
        ({"every": "day", "time": "09:00"}, "2030-03-05T10:00", "2030-03-05T09:00"),
        ({"every": "day", "time": "09:00"}, "2030-03-05T08:59", "2030-03-04T09:00"),
        ({"every": "week", "time": "09:00", "weekday": 1}, "2030-03-06T10:00", "2030-03-04T09:00"),
        ({"every": "week", "time": "09:00", "weekday": 1}, "2030-03-04T08:00", "2030-02-25T09:00"),
        ({"every": "month", "time": "00:00", "day": 31}, "2030-03-05T10:00", "2030-02-28T00:00"),
        ({"every": "month", "time": "12:00", "day": 5}, "2030-03-05T12:00", "2030-03-05T12:00"),
    ],
)
def test_repeat_finds_the_last_scheduled_moment(params, now, last):
    def utc(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    assert RepeatDate.last_moment(params, utc(now)) == utc(last)


def test_repeat_fires_once_per_period():
    make_customer()
    campaign = make_campaign(chain(node("t", "repeat", every="day", time="09:00"), W))
    start = timezone.now().replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(days=1)
    campaign.fired_at = start
    campaign.save()
    moments = [start + timedelta(minutes=m) for m in (30, 61, 90, 24 * 60 + 61)]
    fired = [bool(tick(now=m)["batches"]) for m in moments]
    assert fired == [False, True, False, True]


def test_days_since_registration_lets_in_those_who_reach_the_mark():
    now = timezone.now()
    old = make_customer(registered_at=now - timedelta(days=40))
    due = make_customer(registered_at=now - timedelta(days=30, hours=-1))
    make_customer(registered_at=now - timedelta(days=2))
    campaign = make_campaign(chain(node("t", "days_since_registration", days=30), W))
    tick(now=now + timedelta(hours=2))
    assert _entered(campaign) == {due.pk}  # old passed the mark before the campaign existed
    assert old.pk not in _entered(campaign)


def test_entered_segment_lets_in_new_members_after_the_first_check():
    first = make_customer(city="Moscow")
    segment = create_segment(
        "Muscovites",
        {"op": "and", "rules": [{"field": "customer.city", "operator": "eq", "value": "moscow"}]},
        actor=ACTOR,
        refresh=False,
    )
    campaign = make_campaign(chain(node("t", "entered_segment", segment=segment.pk), W))
    now = timezone.now()
    tick(now=now + timedelta(seconds=1))
    assert _entered(campaign) == set()  # the first check notes who is in
    newcomer = make_customer(city="Moscow")
    tick(now=now + timedelta(seconds=2))
    assert _entered(campaign) == {newcomer.pk}
    assert first.pk not in _entered(campaign)
    services.suspend_campaign(campaign, actor=ACTOR)
    make_customer(city="Moscow")
    assert engine.fire_scheduled(now=now + timedelta(seconds=3)) == []


def test_entered_segment_lets_in_a_member_who_left_and_came_back():
    rule = {"op": "and", "rules": [{"field": "customer.city", "operator": "eq", "value": "omsk"}]}
    stays = make_customer(city="Omsk")
    wanders = make_customer(city="Omsk")
    segment = create_segment("Omsk", rule, actor=ACTOR, refresh=False)
    campaign = make_campaign(
        chain(node("t", "entered_segment", segment=segment.pk), W), reentry_days=0
    )
    now = timezone.now()
    tick(now=now + timedelta(seconds=1))  # notes both
    Customer.objects.filter(pk=wanders.pk).update(city="Kazan")
    newcomer = make_customer(city="Omsk")
    tick(now=now + timedelta(seconds=2))  # wanders left; the newcomer enters
    assert _entered(campaign) == {newcomer.pk}
    Customer.objects.filter(pk=wanders.pk).update(city="Omsk")
    tick(now=now + timedelta(seconds=3))  # back: new again
    assert _entered(campaign) == {newcomer.pk, wanders.pk}
    tick(now=now + timedelta(seconds=4))  # nobody new
    assert Entry.objects.filter(campaign=campaign).count() == 2
    assert stays.pk not in _entered(campaign)
    batches = Batch.objects.filter(campaign=campaign).order_by("id")
    assert [(b.requested, b.entered) for b in batches] == [(1, 1), (1, 1)]


def test_a_repeat_lets_in_everyone_the_re_entry_interval_allows():
    first = make_customer()
    campaign = make_campaign(
        chain(node("t", "repeat", every="day", time="09:00"), W), reentry_days=None
    )
    start = timezone.now().replace(hour=8, minute=0, second=0, microsecond=0) + timedelta(days=1)
    campaign.fired_at = start
    campaign.save()
    tick(now=start + timedelta(hours=2))
    assert _entered(campaign) == {first.pk}
    later = make_customer()
    tick(now=start + timedelta(days=1, hours=2))  # the next day: only the new customer
    assert _entered(campaign) == {first.pk, later.pk}
    batches = Batch.objects.filter(campaign=campaign).order_by("id")
    assert [(b.requested, b.entered) for b in batches] == [(1, 1), (2, 1)]
