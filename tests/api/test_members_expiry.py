"""Membership expiry through the API (docs/api.md): an audience's `member_ttl_days` on create
and update, `ttl_days` on an add, and `expires_at` wherever a membership is shown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.utils import timezone

from tagbase.audiences.models import Audience, Membership
from tagbase.audiences.services import create_audience, expire_due_memberships
from tagbase.testing import make_customers, system_actor

from .support import assert_error, send, token_client

pytestmark = pytest.mark.django_db
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def clock():  # type: ignore[no-untyped-def]
    """A fake clock: ``clock["now"]`` is what the services take for the current time."""
    now = {"now": START}
    with mock.patch.object(timezone, "now", lambda: now["now"]):
        yield now


def iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def test_an_audience_is_created_with_a_default_ttl_and_shows_it():
    client, _ = token_client()
    made = send(client, "POST", "/audiences", {"name": "Trial", "member_ttl_days": 30})
    assert made.status_code == 201 and made.json()["member_ttl_days"] == 30
    plain = send(client, "POST", "/audiences", {"name": "VIP"}).json()
    assert plain["member_ttl_days"] is None
    listed = send(client, "GET", "/audiences").json()["items"]
    assert {a["name"]: a["member_ttl_days"] for a in listed} == {"Trial": 30, "VIP": None}


@pytest.mark.parametrize("days", [0, -1, 3651, 1.5, "a month"])
def test_a_ttl_out_of_range_or_not_a_whole_number_is_a_422(days):
    client, _ = token_client()
    refused = send(client, "POST", "/audiences", {"name": "Trial", "member_ttl_days": days})
    assert_error(refused, 422, "validation_error")
    assert not Audience.objects.exists()


def test_patch_sets_changes_and_clears_the_ttl_and_leaves_the_rest():
    audience = create_audience("Trial", actor=system_actor(), description="kept")
    client, _ = token_client()
    path = f"/audiences/{audience.pk}"
    body = send(client, "PATCH", path, {"member_ttl_days": 14}).json()
    assert (body["name"], body["description"], body["member_ttl_days"]) == ("Trial", "kept", 14)
    body = send(client, "PATCH", path, {"name": "Trial 2"}).json()
    assert (body["name"], body["member_ttl_days"]) == ("Trial 2", 14)
    body = send(client, "PATCH", path, {"member_ttl_days": None}).json()
    assert body["member_ttl_days"] is None
    assert Audience.objects.get(pk=audience.pk).member_ttl_days is None
    assert_error(send(client, "PATCH", path, {"member_ttl_days": 0}), 422, "validation_error")


def test_an_add_with_ttl_days_sets_the_expiry_shown_by_every_membership_read():
    ids = make_customers(2)
    audience = create_audience("Trial", actor=system_actor(), member_ttl_days=30)
    client, _ = token_client()
    add = f"/audiences/{audience.pk}/members/add"
    done = send(client, "POST", add, {"id_type": "sc_id", "ids": [ids[0]], "ttl_days": 7})
    assert done.status_code == 200 and done.json()["added"] == 1
    send(client, "POST", add, {"id_type": "sc_id", "ids": [ids[1]]})
    expected = {ids[0]: iso(START + timedelta(days=7)), ids[1]: iso(START + timedelta(days=30))}

    page = send(client, "GET", f"/audiences/{audience.pk}/members").json()["items"]
    assert {m["sc_id"]: m["expires_at"] for m in page} == expected
    one = send(client, "GET", f"/audiences/{audience.pk}/members/{ids[0]}").json()
    assert one["expires_at"] == expected[ids[0]]
    mine = send(client, "GET", f"/customers/{ids[1]}/audiences").json()["items"]
    assert [m["expires_at"] for m in mine] == [expected[ids[1]]]


def test_ttl_days_belongs_to_adds_only_and_is_checked():
    ids = make_customers(1)
    audience = create_audience("Trial", actor=system_actor())
    client, _ = token_client()
    base = f"/audiences/{audience.pk}/members"
    body = {"id_type": "sc_id", "ids": [ids[0]], "ttl_days": 7}
    assert_error(send(client, "POST", f"{base}/remove", body), 422, "validation_error")
    body["ttl_days"] = 0
    assert_error(send(client, "POST", f"{base}/add", body), 422, "validation_error")
    assert not Membership.objects.exists()


def test_an_expiry_operation_is_listed_by_kind_and_undone_through_the_api(clock):
    ids = make_customers(2)
    audience = create_audience("Trial", actor=system_actor(), member_ttl_days=1)
    client, _ = token_client()
    send(client, "POST", f"/audiences/{audience.pk}/members/add", {"id_type": "sc_id", "ids": ids})
    clock["now"] = START + timedelta(days=1)
    (expiry,) = expire_due_memberships()
    listed = send(client, "GET", "/operations?kind=expiry").json()
    assert [(o["id"], o["action"], o["removed"]) for o in listed["items"]] == [
        (expiry.pk, "remove", 2)
    ]
    undo = send(client, "POST", f"/operations/{expiry.pk}/undo").json()
    assert (undo["kind"], undo["action"], undo["added"]) == ("undo", "add", 2)
    page = send(client, "GET", f"/audiences/{audience.pk}/members").json()["items"]
    assert [m["expires_at"] for m in page] == [None, None]
