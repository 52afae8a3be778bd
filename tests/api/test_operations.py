"""Operations through the API: the history, one operation, and undo."""

from __future__ import annotations

import pytest

from tagbase.audiences.models import Membership, Operation
from tagbase.audiences.services import (
    add_customers_to_audience,
    create_audience,
    delete_audience,
    remove_customers_from_audience,
)
from tagbase.testing import make_customers, system_actor

from .support import assert_error, send, token_client

pytestmark = pytest.mark.django_db


def added(name: str, count: int = 2) -> Operation:
    audience = create_audience(name, actor=system_actor())
    return add_customers_to_audience(
        audience, make_customers(count), actor=system_actor(), kind="cli"
    )


def test_the_history_lists_operations_newest_first():
    first, second = added("One"), added("Two")
    client, _ = token_client("read")
    body = send(client, "GET", "/operations").json()
    assert [o["id"] for o in body["items"]] == [second.pk, first.pk]
    assert body["count"] == 2
    item = body["items"][0]
    assert (item["audience_name"], item["kind"], item["action"], item["added"]) == (
        "Two",
        "cli",
        "add",
        2,
    )
    assert item["actor_label"] == "test" and item["can_undo"] is True


def test_the_history_filters_by_audience_and_kind_and_pages():
    first, second = added("One"), added("Two")
    client, _ = token_client("read")
    by_audience = send(client, "GET", f"/operations?audience_id={first.audience_id}").json()
    assert [o["id"] for o in by_audience["items"]] == [first.pk]
    assert send(client, "GET", "/operations?kind=api").json()["count"] == 0
    page = send(client, "GET", "/operations?limit=1&offset=1").json()
    assert [o["id"] for o in page["items"]] == [first.pk]
    assert second.pk not in [o["id"] for o in page["items"]]


def test_one_operation_is_read_by_id_and_an_unknown_one_is_404():
    op = added("One")
    client, _ = token_client("read")
    body = send(client, "GET", f"/operations/{op.pk}").json()
    assert (body["id"], body["audience_id"], body["requested"], body["undoes_id"]) == (
        op.pk, op.audience_id, 2, None,
    )  # fmt: skip
    assert_error(send(client, "GET", "/operations/999999"), 404, "operation_not_found")


def test_undo_of_an_add_removes_what_it_added_and_answers_with_the_undo():
    op = added("Undo me", count=3)
    client, _ = token_client()
    response = send(client, "POST", f"/operations/{op.pk}/undo")
    assert response.status_code == 200
    body = response.json()
    assert (body["kind"], body["action"], body["removed"], body["undoes_id"]) == (
        "undo", "remove", 3, op.pk,
    )  # fmt: skip
    assert body["can_undo"] is False
    assert not Membership.objects.filter(audience_id=op.audience_id).exists()
    op.refresh_from_db()
    assert op.status == "undone"


def test_undo_of_a_remove_restores_the_members():
    audience = create_audience("Restore", actor=system_actor())
    ids = make_customers(2)
    add_customers_to_audience(audience, ids, actor=system_actor(), kind="cli")
    removal = remove_customers_from_audience(audience, ids, actor=system_actor(), kind="cli")
    client, _ = token_client()
    body = send(client, "POST", f"/operations/{removal.pk}/undo").json()
    assert (body["action"], body["added"]) == ("add", 2)
    assert Membership.objects.filter(audience=audience).count() == 2


def test_undoing_twice_is_409():
    op = added("Once")
    client, _ = token_client()
    assert send(client, "POST", f"/operations/{op.pk}/undo").status_code == 200
    error = assert_error(send(client, "POST", f"/operations/{op.pk}/undo"), 409, "cannot_undo")
    assert "already been undone" in error["message"]


def test_an_undo_cannot_itself_be_undone():
    op = added("Undo of undo")
    client, _ = token_client()
    undo_id = send(client, "POST", f"/operations/{op.pk}/undo").json()["id"]
    assert_error(send(client, "POST", f"/operations/{undo_id}/undo"), 409, "cannot_undo")


def test_an_operation_of_a_deleted_audience_cannot_be_undone():
    op = added("Deleted later")
    delete_audience(op.audience, actor=system_actor())
    client, _ = token_client()
    assert_error(send(client, "POST", f"/operations/{op.pk}/undo"), 409, "cannot_undo")
    assert send(client, "GET", f"/operations/{op.pk}").json()["audience_id"] is None


def test_undo_needs_the_write_scope_and_an_unknown_operation_is_404():
    op = added("Guarded")
    reader, _ = token_client("read")
    assert_error(send(reader, "POST", f"/operations/{op.pk}/undo"), 403, "missing_scope")
    writer, _ = token_client()
    assert_error(send(writer, "POST", "/operations/999999/undo"), 404, "operation_not_found")
