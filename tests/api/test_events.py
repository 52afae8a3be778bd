"""POST /events: customer events in bulk (customers.services.record_events), the row report,
refusals, the `events` scope, and the campaigns an event lets customers into."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from tagbase.accounts.models import Role, User
from tagbase.audiences.models import Membership
from tagbase.audiences.services import create_audience
from tagbase.campaigns.models import Batch
from tagbase.campaigns.tests.builders import chain, make_campaign, node
from tagbase.customers.models import Event
from tagbase.testing import make_customer, system_actor

from .support import assert_error, send, token_client

pytestmark = pytest.mark.django_db

ACTOR = system_actor()
IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


def post(client, rows: list):
    return send(client, "POST", "/events", {"events": rows})


def session_client(role: str) -> Client:
    """Logged in as a new user of this role, without the cost of hashing a password."""
    client = Client()
    client.force_login(User.objects.create(username=f"{role}{User.objects.count() + 1}", role=role))
    return client


def events_client():
    client, _ = token_client("events", name="app")
    return client


def test_events_are_recorded_by_sc_id_or_external_id_with_their_payload_and_time():
    a = make_customer()
    b = make_customer(external_id="erp-7")
    before = timezone.now()
    response = post(
        events_client(),
        [
            {"sc_id": a.pk, "name": "app_login", "payload": {"os": "ios", "n": 2}},
            {"external_id": "erp-7", "name": " visit ", "occurred_at": "2024-05-17T14:30:00+03:00"},
            {"sc_id": str(a.pk), "name": "push_open", "payload": None},
        ],
    )
    assert response.status_code == 200, response.content
    assert response.json() == {"rows": 3, "created": 3, "updated": 0, "failed": 0, "errors": []}
    login, visit, push = Event.objects.order_by("pk")
    assert (login.customer_id, login.name, login.payload) == (
        a.pk,
        "app_login",
        {"os": "ios", "n": 2},
    )
    assert login.occurred_at >= before  # no time given: when it was recorded
    assert (visit.customer_id, visit.name) == (b.pk, "visit")
    assert visit.occurred_at == datetime(2024, 5, 17, 11, 30, tzinfo=UTC)
    assert (push.customer_id, push.payload) == (a.pk, {})


def test_events_are_a_log_the_same_rows_twice_are_recorded_twice():
    a = make_customer()
    client = events_client()
    for _ in range(2):
        assert post(client, [{"sc_id": a.pk, "name": "visit"}]).json()["created"] == 1
    assert Event.objects.filter(customer=a).count() == 2


def test_bad_rows_are_skipped_and_reported_with_their_line_the_rest_recorded():
    a = make_customer(external_id="erp-1")
    response = post(
        events_client(),
        [
            {"sc_id": a.pk, "name": "ok"},
            {"sc_id": 987654, "name": "visit"},
            {"sc_id": a.pk, "external_id": "erp-1", "name": "visit"},
            {"sc_id": a.pk, "name": ""},
            {"sc_id": a.pk, "name": "visit", "occurred_at": "17.05.2024"},
            {"sc_id": None, "name": "visit"},
            {"sc_id": a.pk, "name": "x" * 101},
        ],
    )
    assert response.status_code == 200, response.content
    report = response.json()
    assert (report["rows"], report["created"], report["failed"]) == (7, 1, 6)
    assert [(e["line"], e["field"], e["code"]) for e in report["errors"]] == [
        (2, "sc_id", "customer_not_found"),
        (3, "sc_id", "customer_ref_both"),
        (4, "name", "required"),
        (5, "occurred_at", "datetime_invalid"),
        (6, "sc_id", "customer_missing"),
        (7, "name", "too_long"),
    ]
    assert "100" in report["errors"][5]["message"]
    assert list(Event.objects.values_list("name", flat=True)) == ["ok"]


def test_a_row_without_a_customer_column_refuses_the_whole_request_as_for_receipts():
    a = make_customer()
    rows = [{"sc_id": a.pk, "name": "ok"}, {"name": "visit"}]
    assert_error(post(events_client(), rows), 422, "missing_columns", None)
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"events": []}, "events"),
        ({"events": [{"sc_id": 1}]}, "events.0.name"),
        ({"events": [{"sc_id": 1, "name": "v", "payload": [1]}]}, "events.0.payload"),
        ({"events": [{"sc_id": 1, "name": "v", "colour": "red"}]}, "events.0.colour"),
        ({"events": [{"sc_id": {"x": 1}, "name": "v"}]}, "events.0.sc_id"),
        ({"rows": []}, "events"),
    ],
)
def test_a_body_of_the_wrong_shape_is_refused_whole_naming_the_field(body, field):
    make_customer()
    response = send(events_client(), "POST", "/events", body)
    error = assert_error(response, 422, "validation_error")
    # A value that may be text or a number is reported per form (events.0.sc_id.str).
    assert any(d["field"].startswith(field) for d in error["details"]), error
    assert not Event.objects.exists()


def test_more_than_10000_events_are_refused_whole():
    a = make_customer()
    rows = [{"sc_id": a.pk, "name": "v"}] * 10_001
    error = assert_error(post(events_client(), rows), 422, "validation_error", "events")
    assert "10000" in error["message"]
    assert not Event.objects.exists()


def test_sending_events_needs_the_events_scope_or_a_role_that_may_write():
    a = make_customer()
    row = [{"sc_id": a.pk, "name": "visit"}]
    for scopes in [("read",), ("write",), ("read", "write", "import")]:
        client, _ = token_client(*scopes)
        assert_error(post(client, row), 403, "missing_scope")
    assert_error(post(session_client(Role.ANALYST), row), 403, "forbidden")
    assert not Event.objects.exists()
    assert post(session_client(Role.MARKETER), row).status_code == 200
    assert post(session_client(Role.ADMIN), row).status_code == 200
    assert Event.objects.count() == 2


def test_without_credentials_it_is_401(client):
    assert_error(post(client, [{"sc_id": 1, "name": "visit"}]), 401, "not_authenticated")


@override_settings(TASKS=IMMEDIATE)
def test_an_event_lets_its_customers_into_each_active_campaign_listening_for_it(
    django_capture_on_commit_callbacks,
):
    a, b = make_customer(), make_customer()
    vip = create_audience("VIP", actor=ACTOR)
    coupons = create_audience("Coupons", actor=ACTOR)
    listening = make_campaign(
        chain(node("t", "event_occurred", name="coupon_activated"),
              node("add", "audience", action="add", audience=coupons.pk)),
        name="Coupons",
    )  # fmt: skip
    make_campaign(
        chain(node("t", "event_occurred", name="app_login"),
              node("add", "audience", action="add", audience=vip.pk)),
        name="Logins",
    )  # fmt: skip
    make_campaign(
        chain(node("t", "event_occurred", name="coupon_activated"),
              node("add", "audience", action="add", audience=vip.pk)),
        name="Not active",
        active=False,
    )  # fmt: skip
    yesterday = (timezone.now() - timedelta(days=1)).isoformat()
    rows = [
        {"sc_id": a.pk, "name": "coupon_activated", "occurred_at": yesterday},
        {"sc_id": b.pk, "name": "coupon_activated"},
        {"sc_id": b.pk, "name": "visit"},
    ]
    with django_capture_on_commit_callbacks(execute=True):
        assert post(events_client(), rows).json()["created"] == 3
    members = set(Membership.objects.filter(audience=coupons).values_list("customer_id", flat=True))
    assert members == {a.pk, b.pk}
    assert not Membership.objects.filter(audience=vip).exists()
    [batch] = Batch.objects.all()
    assert (batch.campaign_id, batch.requested, batch.entered) == (listening.pk, 2, 2)
