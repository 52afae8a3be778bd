"""``tagbase campaign …``: list and show (text and JSON), status changes through the services,
errors, and run-due firing scheduled triggers and running due steps at a given moment."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tagbase.audiences.models import Membership
from tagbase.audiences.services import create_audience, delete_audience
from tagbase.campaigns import engine
from tagbase.campaigns.models import Batch, Campaign, Token
from tagbase.campaigns.tests.builders import ACTOR, chain, make_campaign, node
from tagbase.testing import make_customer

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command("campaign", *args, stdout=out, stderr=err)
    return out.getvalue()


def fails(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        run(*args)
    return str(caught.value)


def members_of(audience_id: int) -> set[int]:
    return set(
        Membership.objects.filter(audience_id=audience_id).values_list("customer_id", flat=True)
    )


def add_after_a_day(audience_id: int, trigger: dict) -> dict:
    """trigger → wait 1 day → add to the audience."""
    return chain(
        trigger,
        node("wait", "wait", amount=1, unit="days"),
        node("add", "audience", action="add", audience=audience_id),
    )


# --- list / show ------------------------------------------------------------------------------


def test_list_prints_a_table_and_json_with_the_api_keys():
    vip = create_audience("VIP", actor=ACTOR)
    live = make_campaign(add_after_a_day(vip.pk, node("t", "customer_registered")), name="Live")
    make_campaign(chain(node("t", "customer_registered")), name="draft", active=False)
    engine.enter(live.pk, [make_customer().pk, make_customer().pk])

    lines = run("list").splitlines()
    assert lines[0].split() == ["id", "name", "status", "trigger", "entered", "version", "updated"]
    assert [line.split()[1:5] for line in lines[2:]] == [
        ["draft", "inactive", "customer_registered", "0"],
        ["Live", "active", "customer_registered", "2"],
    ]
    assert [c["name"] for c in json.loads(run("list", "--active", "--json"))] == ["Live"]
    data = json.loads(run("list", "--json"))
    assert data[1]["entered"] == 2 and data[1]["status"] == "active" and "graph" not in data[1]


def test_show_prints_settings_and_the_counts_per_node_by_name_or_id():
    vip = create_audience("VIP", actor=ACTOR)
    campaign = make_campaign(
        add_after_a_day(vip.pk, node("t", "customer_registered")), name="Welcome", reentry_days=30
    )
    engine.enter(campaign.pk, [make_customer().pk])
    text = run("show", "welcome")
    assert f"Campaign:    Welcome (id {campaign.pk})" in text
    assert "Status:      active" in text
    assert "Trigger:     Customer registered (customer_registered)" in text
    assert "Re-entry:    after 30 days" in text
    assert "Version:     1, saved " in text and " by " not in text  # the test actor is no user
    assert "Entered:     1\n" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines()[9:]}
    assert rows["t"] == ["t", "Customer", "registered", "1", "out", "1", "0", "-"]
    assert rows["wait"] == ["wait", "Wait", "0", "-", "0", "-"]
    assert rows["add"] == ["add", "Add", "to", "audience", "“VIP”", "0", "-", "0", "-"]
    data = json.loads(run("show", str(campaign.pk), "--json"))
    assert data["id"] == campaign.pk and data["stats"]["t"]["in"] == 1
    assert [n["id"] for n in data["graph"]["nodes"]] == ["t", "wait", "add"]


def test_an_unknown_campaign_is_a_one_line_error():
    assert fails("show", "Nope") == "No campaign named 'Nope' (see `tagbase campaign list`)."
    assert "No campaign named '12345'" in fails("activate", "12345")


# --- status changes ---------------------------------------------------------------------------


def test_activate_suspend_and_deactivate_change_the_status_through_the_services():
    vip = create_audience("VIP", actor=ACTOR)
    campaign = make_campaign(
        add_after_a_day(vip.pk, node("t", "customer_registered")), name="C", active=False
    )
    assert run("activate", "C").strip() == f"Campaign 'C' (id {campaign.pk}) is now active."
    engine.enter(campaign.pk, [make_customer().pk])
    assert json.loads(run("suspend", str(campaign.pk), "--json"))["status"] == "suspended"
    assert Token.objects.filter(campaign=campaign).count() == 1  # waiting customers stay
    assert "is now inactive" in run("deactivate", "C")
    assert not Token.objects.filter(campaign=campaign).exists()  # and leave when stopped
    saved = Campaign.objects.get(pk=campaign.pk)
    assert saved.status == "inactive" and saved.updated_by is None  # the CLI acts as no user


def test_activation_is_refused_with_the_graph_error_naming_the_node():
    vip = create_audience("VIP", actor=ACTOR)
    make_campaign(chain(node("t", "customer_registered"),
                        node("add", "audience", action="add", audience=vip.pk)),
                  name="C", active=False)  # fmt: skip
    delete_audience(vip, actor=ACTOR)
    assert fails("activate", "C") == f"node 'add', audience: audience {vip.pk} does not exist"
    assert Campaign.objects.get().status == "inactive"


# --- run-due ----------------------------------------------------------------------------------


def test_run_due_fires_scheduled_triggers_and_runs_due_steps_at_the_moment_given():
    a, b = make_customer(), make_customer()
    vip = create_audience("VIP", actor=ACTOR)
    at = timezone.now() + timedelta(hours=1)
    campaign = make_campaign(
        add_after_a_day(vip.pk, node("t", "date", at=at.isoformat())), name="Dated"
    )
    make_campaign(chain(node("t", "customer_registered")), name="Idle")

    early = run("run-due", "--now", (at - timedelta(minutes=1)).isoformat())
    assert "Fired" not in early and not Batch.objects.exists()
    assert f"Campaign 'Dated' (id {campaign.pk}): nothing due." in early

    fired = run("run-due", "--now", (at + timedelta(minutes=1)).isoformat())
    [batch] = Batch.objects.all()
    assert f"Fired 'Dated' (id {campaign.pk}): batch #{batch.pk}, 2 of 2 customers entered." in (
        fired
    )
    assert members_of(vip.pk) == set()  # waiting a day
    assert Token.objects.filter(node="wait").count() == 2

    later = (at + timedelta(days=1, minutes=2)).isoformat()
    data = json.loads(run("run-due", "--now", later, "--json"))
    assert data["batches"] == []
    steps = {c["name"]: c["steps"] for c in data["campaigns"]}
    assert steps == {"Dated": 2, "Idle": 0}  # the wait, then the audience action
    assert members_of(vip.pk) == {a.pk, b.pk}
    assert not Token.objects.exists()


def test_run_due_refuses_a_moment_that_is_not_iso_8601():
    assert "--now '31.01.2030' is not an ISO 8601 date-time" in fails(
        "run-due", "--now", "31.01.2030"
    )
    assert "No active campaign." in run("run-due")
