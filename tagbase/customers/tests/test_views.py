"""Customers → All customers and the customer profile in the web UI."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tagbase.accounts.models import Role
from tagbase.audiences import services
from tagbase.customers.models import Card, CardStatus, CustomerStats, Event, Receipt
from tagbase.testing import make_customer, make_customers, make_user, system_actor

pytestmark = pytest.mark.django_db
ACTOR = system_actor()
LIST = "customers:customer_list"


def client_for(role: str) -> Client:
    client = Client()
    client.force_login(make_user(role))
    return client


def text(response) -> str:
    return response.content.decode()


def give_stats(customer, receipts: int, total: str, days_ago: int = 3) -> None:
    last = timezone.now() - dt.timedelta(days=days_ago)
    CustomerStats.objects.create(
        customer=customer,
        receipt_count=receipts,
        total_amount=Decimal(total),
        average_amount=Decimal(total) / receipts,
        average_items=Decimal("2.5"),
        first_receipt_at=last - dt.timedelta(days=100),
        last_receipt_at=last,
    )


# --- Access -----------------------------------------------------------------------------------


def test_anonymous_visitors_are_sent_to_the_login_page():
    customer = make_customer()
    for url in (reverse(LIST), reverse("customers:customer_detail", args=[customer.pk])):
        response = Client().get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", [Role.MARKETER, Role.ANALYST, Role.ADMIN])
def test_the_list_and_the_profile_render_for_every_role(role):
    customer = make_customer()
    client = client_for(role)
    assert client.get(reverse(LIST)).status_code == 200
    assert client.get(reverse("customers:customer_detail", args=[customer.pk])).status_code == 200


def test_an_unknown_customer_is_404():
    client = client_for(Role.MARKETER)
    assert client.get(reverse("customers:customer_detail", args=[987_654])).status_code == 404


def test_posting_to_the_read_only_pages_is_refused():
    client = client_for(Role.MARKETER)
    assert client.post(reverse(LIST)).status_code == 405


# --- The list ---------------------------------------------------------------------------------


def test_the_list_shows_the_columns_with_the_id_linking_to_the_profile():
    customer = make_customer(
        last_name="Ivanova",
        first_name="Anna",
        phone="+79123456789",
        phone_raw="+79123456789",
        email="anna@example.com",
        email_raw="anna@example.com",
        city="Kazan",
    )
    give_stats(customer, 4, "1234.50")
    html = text(client_for(Role.ANALYST).get(reverse(LIST)))
    assert reverse("customers:customer_detail", args=[customer.pk]) in html
    for shown in ("Ivanova Anna", "+79123456789", "anna@example.com", "Kazan", "1,234.50"):
        assert shown in html


def test_the_list_pages_and_keeps_a_bounded_number_of_queries(settings):
    settings.TAGBASE_PAGE_SIZE = 10
    ids = make_customers(25, city="Omsk")
    for customer_id in ids[:15]:
        CustomerStats.objects.create(customer_id=customer_id, receipt_count=1, total_amount=5)
    client = client_for(Role.MARKETER)
    with CaptureQueriesContext(connection) as ctx:
        html = text(client.get(reverse(LIST), {"page": 2}))
    assert len(ctx.captured_queries) <= 5
    assert "Showing 11\u201320 of 25" in html
    assert text(client.get(reverse(LIST), {"page": "nonsense"})).count("<tr>") == 11


def test_searching_by_phone_in_any_format_finds_the_customer():
    wanted = make_customer(last_name="Wanted", phone="+79123456789", phone_raw="8 912 345 67 89")
    make_customer(last_name="Other", phone="+79123456780", phone_raw="89123456780")
    html = text(client_for(Role.MARKETER).get(reverse(LIST), {"q": "8 (912) 345-67-89"}))
    assert reverse("customers:customer_detail", args=[wanted.pk]) in html
    assert "Other" not in html


def test_filters_narrow_the_list():
    rich = make_customer(last_name="Rich", city="Perm")
    poor = make_customer(last_name="Poor", city="Perm")
    give_stats(rich, 10, "9000")
    give_stats(poor, 1, "10")
    html = text(client_for(Role.MARKETER).get(reverse(LIST), {"total_min": "1000", "city": "per"}))
    assert "Rich" in html and "Poor" not in html


def test_an_invalid_filter_is_reported_and_ignored_not_a_crash():
    make_customer(last_name="Still listed")
    response = client_for(Role.MARKETER).get(
        reverse(LIST), {"receipts_min": "many", "registered_from": "31.12.2024"}
    )
    html = text(response)
    assert response.status_code == 200
    assert "could not be used" in html
    assert "Receipts from" in html and "Registered from" in html
    assert "Still listed" in html


def test_an_htmx_search_gets_only_the_results_part():
    make_customer(last_name="Partial")
    response = client_for(Role.MARKETER).get(
        reverse(LIST), {"q": "Partial"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="results"
    )
    html = text(response)
    assert 'id="results"' in html and "Partial" in html and "<html" not in html


def test_an_empty_result_shows_an_empty_state():
    html = text(client_for(Role.MARKETER).get(reverse(LIST), {"q": "Nobody-like-this"}))
    assert "No customer matches" in html


def test_html_in_a_customer_name_is_escaped_everywhere():
    customer = make_customer(last_name="<script>alert(1)</script>", city="<b>x</b>")
    client = client_for(Role.MARKETER)
    for url in (reverse(LIST), reverse("customers:customer_detail", args=[customer.pk])):
        html = text(client.get(url))
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
        assert "<b>x</b>" not in html


# --- The profile ------------------------------------------------------------------------------


def test_the_profile_shows_attributes_contacts_cards_metrics_receipts_events():
    customer = make_customer(
        external_id="ERP-7",
        last_name="Petrov",
        first_name="Ivan",
        birth_date=dt.date(1990, 5, 17),
        country="Russia",
        city="Tver",
        email="ivan@example.com",
        email_raw="Ivan@Example.com",
        attributes={"tier": "gold", "items": 3},
    )
    Card.objects.create(number="7700123", customer=customer, status=CardStatus.BLOCKED)
    Receipt.objects.create(
        customer=customer, number="R-1", date=timezone.now(), amount=Decimal("150.00"), items=2
    )
    Event.objects.create(customer=customer, name="app_login", payload={"os": "android"})
    give_stats(customer, 1, "150.00", days_ago=0)
    html = text(
        client_for(Role.ANALYST).get(reverse("customers:customer_detail", args=[customer.pk]))
    )
    for shown in (
        "Petrov Ivan", "ERP-7", "17 May 1990", "years)", "Russia", "Tver", "ivan@example.com",
        "7700123", "Blocked", "R-1", "150.00", "app_login", "android", "tier", "gold",
        "Average items per receipt", "2.50", "days ago",
    ):  # fmt: skip
        assert shown in html, shown


def test_an_invalid_phone_and_a_missing_e_mail_are_flagged():
    customer = make_customer(phone=None, phone_raw="12-34", email=None, email_raw="")
    html = text(
        client_for(Role.MARKETER).get(reverse("customers:customer_detail", args=[customer.pk]))
    )
    assert "Invalid phone" in html and "12-34" in html
    assert "No e-mail" in html
    assert "icon-warning" in html


def test_the_profile_has_the_tags_section_with_the_operation_and_the_removals():
    customer = make_customer()
    kept = services.create_audience("Kept", actor=ACTOR)
    left = services.create_audience("Left", actor=ACTOR)
    op = services.add_customers_to_audience(kept, [customer.pk], actor=ACTOR, kind="api")
    services.add_customers_to_audience(left, [customer.pk], actor=ACTOR, kind="ui")
    removal = services.remove_customers_from_audience(left, [customer.pk], actor=ACTOR, kind="ui")
    html = text(
        client_for(Role.MARKETER).get(reverse("customers:customer_detail", args=[customer.pk]))
    )
    assert "Tags (target audience)" in html
    assert reverse("audiences:audience_detail", args=[kept.pk]) in html
    assert f"#{op.pk}</span> · API · test" in html
    assert "Membership history: 1 removal" in html
    assert f"#{removal.pk}</span> · Web UI" in html


def test_the_profile_uses_a_bounded_number_of_queries():
    customer = make_customer()
    for n in range(5):
        audience = services.create_audience(f"A{n}", actor=ACTOR)
        services.add_customers_to_audience(audience, [customer.pk], actor=ACTOR, kind="cli")
    client = client_for(Role.MARKETER)
    with CaptureQueriesContext(connection) as ctx:
        client.get(reverse("customers:customer_detail", args=[customer.pk]))
    assert len(ctx.captured_queries) <= 10
