"""The profile's *Campaigns* section: "entered Welcome VIPs on …, added to VIP by step …"."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from tagbase.accounts.models import Role
from tagbase.audiences.services import create_audience
from tagbase.campaigns import engine
from tagbase.campaigns.tests.builders import ACTOR, chain, make_campaign, node
from tagbase.testing import make_customer, make_user

pytestmark = pytest.mark.django_db


def _profile(customer_id: int, role: str = Role.ANALYST) -> str:
    client = Client()
    client.force_login(make_user(role))
    response = client.get(reverse("customers:customer_detail", args=[customer_id]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_profile_lists_the_campaigns_entered_and_the_steps_passed():
    anna, boris = make_customer(), make_customer()
    vip = create_audience("VIP", actor=ACTOR)
    campaign = make_campaign(
        chain(
            node("start", "customer_registered"),
            node("cap", "limit", max=1),
            node("vip", "audience", action="add", audience=vip.pk),
        ),
        name="Welcome VIPs",
    )
    engine.enter(campaign.pk, [anna.pk, boris.pk])
    engine.run_due(campaign.pk)

    html = _profile(anna.pk)
    assert "Campaigns" in html and "Welcome VIPs" in html
    assert "Add to audience “VIP”" in html and "(vip)" in html
    boris_html = _profile(boris.pk)
    assert "Welcome VIPs" in boris_html and "Add to audience “VIP”" not in boris_html
    assert "over" in boris_html  # the port the limit let him out by

    nobody = make_customer()
    assert "This customer has entered no campaign." in _profile(nobody.pk)


def test_the_section_costs_the_same_queries_for_one_entry_or_five():
    customer = make_customer()
    client = Client()
    client.force_login(make_user(Role.MARKETER))
    url = reverse("customers:customer_detail", args=[customer.pk])
    counts = []
    for n in range(5):
        campaign = make_campaign(
            chain(node("start", "customer_registered"), node("cap", "limit", max=5)),
            name=f"C{n}",
        )
        engine.enter(campaign.pk, [customer.pk])
        engine.run_due(campaign.pk)
        with CaptureQueriesContext(connection) as ctx:
            assert f"C{n}" in client.get(url).content.decode()
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[-1], counts
