"""Members through the API: add and remove by identifiers, the page walk, the membership check,
and a customer's audiences."""

from __future__ import annotations

import pytest

from tagbase.audiences.models import Membership, Operation
from tagbase.audiences.services import add_customers_to_audience, create_audience
from tagbase.customers.models import Card
from tagbase.testing import make_customer, make_customers, system_actor

from .support import assert_error, send, token_client

pytestmark = pytest.mark.django_db


def new_audience(name: str = "Target"):
    return create_audience(name, actor=system_actor())


def add(client, audience_id: int, id_type: str, ids: list):
    return send(
        client, "POST", f"/audiences/{audience_id}/members/add", {"id_type": id_type, "ids": ids}
    )


def remove(client, audience_id: int, id_type: str, ids: list):
    body = {"id_type": id_type, "ids": ids}
    return send(client, "POST", f"/audiences/{audience_id}/members/remove", body)


def members_of(audience_id: int) -> set[int]:
    return set(
        Membership.objects.filter(audience_id=audience_id).values_list("customer_id", flat=True)
    )


# --- Add and remove ---------------------------------------------------------------------------


def test_adding_by_sc_id_adds_and_answers_with_the_operation():
    audience = new_audience()
    ids = make_customers(3)
    client, _ = token_client()
    response = add(client, audience.pk, "sc_id", [ids[0], str(ids[1]), ids[2]])
    assert response.status_code == 200
    body = response.json()
    op = Operation.objects.get(pk=body["id"])
    assert (body["audience_id"], body["kind"], body["action"], body["status"]) == (
        audience.pk, "api", "add", "succeeded",
    )  # fmt: skip
    assert (body["requested"], body["added"], body["already_member"]) == (3, 3, 0)
    assert body["rejected"] == [] and body["duplicates"] == 0
    assert op.added == 3 and members_of(audience.pk) == set(ids)


def test_adding_again_counts_already_members_and_changes_nothing():
    audience = new_audience()
    ids = make_customers(2)
    client, _ = token_client()
    add(client, audience.pk, "sc_id", ids)
    body = add(client, audience.pk, "sc_id", ids).json()
    assert (body["added"], body["already_member"]) == (0, 2)


def test_rejected_values_are_listed_with_their_reason_so_the_partner_can_fix_them():
    audience = new_audience()
    known = make_customer(email="known@example.com")
    make_customer(email="shared@example.com")
    make_customer(email="shared@example.com")
    client, _ = token_client()
    ids = [
        "Known@Example.com",
        "nobody@example.com",
        "shared@example.com",
        "no-at-sign",
        "known@example.com",
    ]
    body = add(client, audience.pk, "email", ids).json()
    assert (body["added"], body["not_found"], body["ambiguous"], body["invalid"]) == (1, 1, 1, 1)
    assert body["duplicates"] == 1
    accounted = ("matched", "not_found", "ambiguous", "invalid", "duplicates")
    assert sum(body[k] for k in accounted) == len(ids)
    rejected = {r["value"]: r["reason"] for r in body["rejected"]}
    assert rejected == {
        "nobody@example.com": "not_found",
        "shared@example.com": "ambiguous",
        "no-at-sign": "email_invalid",
    }
    assert all(r["message"] for r in body["rejected"])
    assert members_of(audience.pk) == {known.pk}


def test_phones_in_any_local_habit_find_the_same_customer():
    audience = new_audience()
    customer = make_customer(phone="+79123456789", phone_raw="8 912 345-67-89")
    client, _ = token_client()
    body = add(
        client, audience.pk, "phone", ["+7 (912) 345-67-89", 79123456789, "89123456789"]
    ).json()
    assert (body["added"], body["duplicates"]) == (1, 2)
    assert members_of(audience.pk) == {customer.pk}


def test_cards_and_external_ids_are_accepted_too():
    audience = new_audience()
    by_card = make_customer()
    Card.objects.create(number="AB123", customer=by_card)
    by_external = make_customer(external_id="erp-7")
    client, _ = token_client()
    assert add(client, audience.pk, "card", ["ab 123"]).json()["added"] == 1
    assert add(client, audience.pk, "external_id", ["erp-7"]).json()["added"] == 1
    assert members_of(audience.pk) == {by_card.pk, by_external.pk}


def test_a_request_whose_every_value_is_invalid_still_records_an_empty_operation():
    audience = new_audience()
    client, _ = token_client()
    response = add(client, audience.pk, "sc_id", ["0012", "abc", -4])
    assert response.status_code == 200
    body = response.json()
    assert (body["requested"], body["added"], body["invalid"]) == (0, 0, 3)
    assert [r["reason"] for r in body["rejected"]] == [
        "leading_zero",
        "not_a_number",
        "out_of_range",
    ]
    assert Operation.objects.filter(pk=body["id"], audience=audience).exists()


def test_removing_takes_members_out_and_counts_the_others():
    audience = new_audience()
    ids = make_customers(3)
    add_customers_to_audience(audience, ids[:2], actor=system_actor(), kind="cli")
    client, _ = token_client()
    body = remove(client, audience.pk, "sc_id", ids).json()
    assert (body["action"], body["removed"], body["not_member"]) == ("remove", 2, 1)
    assert members_of(audience.pk) == set()


def test_adding_to_an_unknown_audience_is_404():
    ids = make_customers(1)
    client, _ = token_client()
    assert_error(add(client, 999_999, "sc_id", ids), 404, "audience_not_found")
    assert_error(remove(client, 999_999, "sc_id", ids), 404, "audience_not_found")


def test_ten_thousand_ids_are_added_in_one_call_with_a_bounded_number_of_queries(
    django_assert_max_num_queries,
):
    audience = new_audience()
    ids = make_customers(10_000)
    client, _ = token_client()
    # token + stamp, 2 resolution chunks, lock, operation insert/update, count + insert,
    # audience update, a savepoint, and the audit entries of the token's use and of the
    # operation (15 today): independent of the number of ids.
    with django_assert_max_num_queries(16):
        response = add(client, audience.pk, "sc_id", ids)
    assert response.status_code == 200
    assert response.json()["added"] == 10_000
    audience.refresh_from_db()
    assert audience.member_count == 10_000


# --- Reading members --------------------------------------------------------------------------


def test_walking_the_members_pages_returns_every_member_exactly_once():
    audience = new_audience()
    ids = make_customers(23)
    add_customers_to_audience(audience, ids, actor=system_actor(), kind="cli")
    client, _ = token_client("read")
    seen: list[int] = []
    after, pages = 0, 0
    while after is not None:
        body = send(client, "GET", f"/audiences/{audience.pk}/members?after={after}&limit=5").json()
        seen.extend(item["sc_id"] for item in body["items"])
        after = body["next_after"]
        pages += 1
    assert seen == sorted(ids)
    assert pages == 5  # 5+5+5+5+3: the last page says so itself, no empty extra page


def test_a_members_page_carries_when_and_by_which_operation():
    audience = new_audience()
    ids = make_customers(2)
    op = add_customers_to_audience(audience, ids, actor=system_actor(), kind="cli")
    client, _ = token_client("read")
    body = send(client, "GET", f"/audiences/{audience.pk}/members").json()
    assert [i["operation_id"] for i in body["items"]] == [op.pk, op.pk]
    assert all(i["set_at"] for i in body["items"])
    assert body["next_after"] is None


def test_a_full_last_page_ends_the_walk():
    audience = new_audience()
    ids = make_customers(4)
    add_customers_to_audience(audience, ids, actor=system_actor(), kind="cli")
    client, _ = token_client("read")
    body = send(client, "GET", f"/audiences/{audience.pk}/members?limit=4").json()
    assert len(body["items"]) == 4 and body["next_after"] is None


def test_the_members_of_an_unknown_audience_are_404():
    client, _ = token_client("read")
    assert_error(send(client, "GET", "/audiences/999999/members"), 404, "audience_not_found")


def test_the_membership_check_answers_200_with_details_for_a_member():
    audience = new_audience()
    [customer] = make_customers(1)
    op = add_customers_to_audience(audience, [customer], actor=system_actor(), kind="cli")
    client, _ = token_client("read")
    body = send(client, "GET", f"/audiences/{audience.pk}/members/{customer}").json()
    assert body["member"] is True
    assert body["operation_id"] == op.pk and body["set_at"]


def test_the_membership_check_is_one_query_for_a_member(django_assert_max_num_queries):
    audience = new_audience()
    [customer] = make_customers(1)
    add_customers_to_audience(audience, [customer], actor=system_actor(), kind="cli")
    client, _ = token_client("read")
    send(client, "GET", "/audiences")  # stamps the token's last use
    with django_assert_max_num_queries(2):  # the token, the membership
        send(client, "GET", f"/audiences/{audience.pk}/members/{customer}")


def test_the_membership_check_is_404_for_a_non_member_and_for_an_unknown_audience():
    audience = new_audience()
    [customer] = make_customers(1)
    client, _ = token_client("read")
    path = f"/audiences/{audience.pk}/members/{customer}"
    assert_error(send(client, "GET", path), 404, "not_member")
    assert_error(
        send(client, "GET", f"/audiences/999999/members/{customer}"), 404, "audience_not_found"
    )


# --- A customer's audiences -------------------------------------------------------------------


def test_a_customers_audiences_list_each_with_when_and_which_operation():
    first, second = new_audience("First"), new_audience("Second")
    [customer] = make_customers(1)
    op1 = add_customers_to_audience(first, [customer], actor=system_actor(), kind="cli")
    op2 = add_customers_to_audience(second, [customer], actor=system_actor(), kind="cli")
    client, _ = token_client("read")
    body = send(client, "GET", f"/customers/{customer}/audiences").json()
    assert [(i["audience_id"], i["name"], i["operation_id"]) for i in body["items"]] == [
        (first.pk, "First", op1.pk),
        (second.pk, "Second", op2.pk),
    ]
    assert all(i["set_at"] for i in body["items"])


def test_a_customer_in_no_audience_has_an_empty_list_and_an_unknown_one_is_404():
    [customer] = make_customers(1)
    client, _ = token_client("read")
    assert send(client, "GET", f"/customers/{customer}/audiences").json() == {"items": []}
    assert_error(send(client, "GET", "/customers/999999/audiences"), 404, "customer_not_found")
