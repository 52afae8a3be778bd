"""What the pages and the API read: node statistics, entries per day, run history, a
customer's campaigns and the steps they passed (with the port they left by)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from tagbase.audiences.services import (
    add_customers_to_audience,
    create_audience,
    delete_audience,
)
from tagbase.campaigns import engine, queries, services
from tagbase.campaigns.models import Passage
from tagbase.campaigns.tests.builders import ACTOR, chain, make_campaign, node, welcome_vips
from tagbase.customers.services import load_receipts
from tagbase.testing import make_customer

pytestmark = pytest.mark.django_db
IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


def _receipt(customer, number: str, amount: str) -> dict[str, object]:
    return {"sc_id": customer.pk, "number": number, "date": timezone.now().isoformat(),
            "amount": amount}  # fmt: skip


@override_settings(TASKS=IMMEDIATE)
def test_the_goal_chain_is_read_back_per_node_per_day_and_per_customer(
    django_capture_on_commit_callbacks,
):
    rich = make_customer(first_name="Anna", email="anna@example.com")
    poor = make_customer(first_name="Boris")
    vip = create_audience("VIP", actor=ACTOR)
    prospects = create_audience("Prospects", actor=ACTOR)
    add_customers_to_audience(prospects, [rich.pk, poor.pk], actor=ACTOR, kind="api")
    campaign = make_campaign(welcome_vips(vip.pk, prospects.pk), name="Welcome VIPs")
    with django_capture_on_commit_callbacks(execute=True):
        load_receipts([_receipt(rich, "R1", "12000"), _receipt(poor, "P1", "3")], actor=ACTOR)

    stats = queries.node_stats(campaign.pk)
    assert stats["receipt"]["in"] == 2 and stats["receipt"]["out"] == {"out": 2}
    assert stats["big"]["out"] == {"positive": 1, "negative": 1}
    assert stats["mail"]["out"] == {"out": 1, "no_contact": 0}
    assert "drop" not in stats  # Boris is still waiting
    assert stats["big"]["errors"] == 0 and stats["big"]["stopped"] == 0

    week_later = timezone.now() + timedelta(days=7, minutes=1)
    engine.run_due(campaign.pk, now=week_later)
    assert queries.node_stats(campaign.pk)["drop"]["out"] == {"out": 1}

    days = queries.entries_per_day(campaign.pk, days=7)
    assert len(days) == 7 and days[-1] == (timezone.localdate(), 2) and sum(n for _, n in days) == 2

    [run] = queries.recent_batches(campaign.pk)
    assert run["batch"].entered == 2
    assert [s.node for s in run["steps"]][:2] == ["receipt", "big"]

    [anna] = queries.customer_campaigns(rich.pk)
    assert anna["campaign"].name == "Welcome VIPs"
    assert [(s["node"], s["port"], s["title"]) for s in anna["steps"]] == [
        ("big", "positive", "Filter customers"),
        ("vip", "out", "Add to audience “VIP”"),
        ("mail", "out", "Send message"),
    ]
    [boris] = queries.customer_campaigns(poor.pk)
    assert [(s["node"], s["port"]) for s in boris["steps"]] == [
        ("big", "negative"), ("week", "out"), ("drop", "out"),
    ]  # fmt: skip
    assert boris["steps"][-1]["title"] == "Remove from audience “Prospects”"
    assert boris["steps"][-1]["at"] == week_later  # the engine's clock, not the wall clock

    found = queries.campaign_list("welcome")
    assert [(c.name, c.entered) for c in found] == [("Welcome VIPs", 2)]
    services.suspend_campaign(campaign, actor=ACTOR)
    assert list(queries.campaign_list(only_active=True)) == []


def test_each_customer_is_recorded_with_the_port_they_left_by_or_none_if_stopped():
    customers = [make_customer() for _ in range(3)]
    ids = [c.pk for c in customers]
    gone = create_audience("Gone soon", actor=ACTOR)
    campaign = make_campaign(
        chain(
            node("t", "customer_registered"),
            node("cap", "limit", max=2),
            node("add", "audience", action="add", audience=gone.pk),
        )
    )
    delete_audience(gone, actor=ACTOR)
    assert engine.enter(campaign.pk, ids) is not None
    engine.run_due(campaign.pk)
    cap = dict(Passage.objects.filter(step__node="cap").values_list("customer_id", "port"))
    assert cap == {ids[0]: "out", ids[1]: "out", ids[2]: "over"}
    # The audience no longer exists: the step fails and stops both customers it received.
    add = dict(Passage.objects.filter(step__node="add").values_list("customer_id", "port"))
    assert add == {ids[0]: "", ids[1]: ""}
    stats = queries.node_stats(campaign.pk)["add"]
    assert (stats["in"], stats["stopped"], stats["errors"]) == (2, 2, 1)
    assert "no longer exists" in stats["last_error"]


def test_no_campaigns_no_rows():
    customer = make_customer()
    assert queries.customer_campaigns(customer.pk) == []


def test_deleting_a_customer_or_a_campaign_leaves_no_engine_rows_behind():
    """Entry, Token and Passage have no database constraints (see models.Entry): the cascade is
    Django's, and must still reach every row."""
    from tagbase.campaigns.models import Campaign, Entry, Token

    a, b = make_customer(), make_customer()
    campaign = make_campaign(
        chain(
            node("t", "customer_registered"),
            node("cap", "limit", max=5),
            node("w", "wait", amount=1, unit="days"),
        )
    )
    engine.enter(campaign.pk, [a.pk, b.pk])
    engine.run_due(campaign.pk)
    assert (Entry.objects.count(), Token.objects.count(), Passage.objects.count()) == (2, 2, 2)
    a.delete()
    assert Entry.objects.filter(customer_id=a.pk).count() == 0
    assert Token.objects.filter(customer_id=a.pk).count() == 0
    assert Passage.objects.filter(customer_id=a.pk).count() == 0
    assert (Entry.objects.count(), Token.objects.count(), Passage.objects.count()) == (1, 1, 1)
    Campaign.objects.filter(pk=campaign.pk).delete()
    assert (Entry.objects.count(), Token.objects.count(), Passage.objects.count()) == (0, 0, 0)
