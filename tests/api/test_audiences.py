"""Audiences through the API: list, create, read, rename, delete."""

from __future__ import annotations

import pytest

from tagbase.audiences.models import Audience
from tagbase.audiences.services import add_customers_to_audience, create_audience
from tagbase.testing import make_customers, system_actor

from .support import assert_error, send, token_client

pytestmark = pytest.mark.django_db


def audience(name: str, members: int = 0) -> Audience:
    made = create_audience(name, actor=system_actor())
    if members:
        ids = make_customers(members)
        add_customers_to_audience(made, ids, actor=system_actor(), kind="cli")
        made.refresh_from_db()
    return made


def test_the_list_shows_name_count_and_dates_in_name_order():
    audience("beta", members=3)
    audience("Alpha")
    client, _ = token_client("read")
    body = send(client, "GET", "/audiences").json()
    assert body["count"] == 2
    assert [(a["name"], a["member_count"]) for a in body["items"]] == [("Alpha", 0), ("beta", 3)]
    alpha, beta = body["items"]
    assert alpha["last_set_at"] is None and beta["last_set_at"] is not None
    assert {"id", "description", "created_at", "updated_at"} <= set(beta)


def test_the_list_filters_by_part_of_the_name_in_any_case():
    audience("Summer VIP")
    audience("Winter")
    client, _ = token_client("read")
    body = send(client, "GET", "/audiences?q=vip").json()
    assert [a["name"] for a in body["items"]] == ["Summer VIP"]
    assert body["count"] == 1


def test_the_list_pages_with_limit_and_offset():
    for n in range(5):
        audience(f"A{n}")
    client, _ = token_client("read")
    body = send(client, "GET", "/audiences?limit=2&offset=2").json()
    assert [a["name"] for a in body["items"]] == ["A2", "A3"]
    assert (body["count"], body["limit"], body["offset"]) == (5, 2, 2)


def test_the_list_takes_a_bounded_number_of_queries(django_assert_max_num_queries):
    for n in range(30):
        audience(f"Q{n}")
    client, _ = token_client("read")
    with django_assert_max_num_queries(5):  # token, its last-use stamp + audit entry, page, count
        assert len(send(client, "GET", "/audiences?limit=1000").json()["items"]) == 30


def test_creating_an_audience_answers_201_with_it():
    client, _ = token_client()
    response = send(client, "POST", "/audiences", {"name": "  New one ", "description": "Why"})
    assert response.status_code == 201
    body = response.json()
    assert (body["name"], body["description"], body["member_count"]) == ("New one", "Why", 0)
    assert Audience.objects.get(pk=body["id"]).name == "New one"


def test_a_name_taken_after_case_folding_is_409():
    audience("Loyal Customers")
    client, _ = token_client()
    response = send(client, "POST", "/audiences", {"name": "loyal  customers"})
    assert_error(response, 409, "audience_name_taken", "name")


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("   ", "name_empty"),
        ("x" * 201, "name_too_long"),
        ("Bad\u200bname", "name_control_character"),
    ],
)
def test_an_invalid_name_is_422_with_the_reason_code(name, code):
    client, _ = token_client()
    assert_error(send(client, "POST", "/audiences", {"name": name}), 422, code, "name")
    assert not Audience.objects.exists()


def test_a_name_of_the_wrong_type_is_a_validation_error():
    client, _ = token_client()
    assert_error(send(client, "POST", "/audiences", {"name": 5}), 422, "validation_error", "name")


def test_an_audience_is_read_by_id():
    made = audience("Readable", members=2)
    client, _ = token_client("read")
    body = send(client, "GET", f"/audiences/{made.pk}").json()
    assert (body["id"], body["name"], body["member_count"]) == (made.pk, "Readable", 2)


def test_an_unknown_audience_is_404():
    client, _ = token_client()
    assert_error(send(client, "GET", "/audiences/999999"), 404, "audience_not_found", None)
    assert_error(
        send(client, "PATCH", "/audiences/999999", {"name": "x"}), 404, "audience_not_found"
    )
    assert_error(send(client, "DELETE", "/audiences/999999"), 404, "audience_not_found")


def test_patch_renames_and_keeps_the_members():
    made = audience("Old", members=2)
    client, _ = token_client()
    body = send(client, "PATCH", f"/audiences/{made.pk}", {"name": "New"}).json()
    assert (body["name"], body["member_count"]) == ("New", 2)
    made.refresh_from_db()
    assert made.name == "New"


def test_patch_can_change_only_the_description():
    made = audience("Keep my name")
    client, _ = token_client()
    body = send(client, "PATCH", f"/audiences/{made.pk}", {"description": "Now described"}).json()
    assert (body["name"], body["description"]) == ("Keep my name", "Now described")


def test_patch_with_nothing_to_change_is_422():
    made = audience("Unchanged")
    client, _ = token_client()
    error = assert_error(
        send(client, "PATCH", f"/audiences/{made.pk}", {}), 422, "validation_error"
    )
    assert "name, description or both" in error["message"]


def test_patch_to_a_taken_name_is_409():
    audience("Taken")
    made = audience("Mine")
    client, _ = token_client()
    response = send(client, "PATCH", f"/audiences/{made.pk}", {"name": "TAKEN"})
    assert_error(response, 409, "audience_name_taken", "name")


def test_delete_answers_204_and_the_audience_is_gone():
    made = audience("Doomed", members=3)
    client, _ = token_client()
    response = send(client, "DELETE", f"/audiences/{made.pk}")
    assert response.status_code == 204
    assert response.content == b""
    assert not Audience.objects.filter(pk=made.pk).exists()
    assert_error(send(client, "GET", f"/audiences/{made.pk}"), 404, "audience_not_found")
