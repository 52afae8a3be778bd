"""Customers and receipts through the API: bulk loads, the profile, and lookup by identifier."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tagbase.customers.models import Card, Customer, CustomerStats, Receipt
from tagbase.testing import make_customer

from .support import assert_error, send, token_client

pytestmark = pytest.mark.django_db


def bulk(client, rows: list):
    return send(client, "POST", "/customers/bulk", {"customers": rows})


def receipts(client, rows: list):
    return send(client, "POST", "/receipts/bulk", {"receipts": rows})


# --- Bulk customers ---------------------------------------------------------------------------


def test_bulk_creates_customers_with_normalised_contacts_cards_and_attributes():
    client, _ = token_client()
    row = {
        "external_id": "erp-1",
        "last_name": "Ivanova",
        "first_name": "Anna",
        "gender": "f",
        "birth_date": "1990-04-01",
        "phone": "8 912 345-67-89",
        "email": "Anna@Example.COM",
        "card": "ab 12",
        "attributes": {"tier": "gold", "points": 10},
    }
    response = bulk(client, [row])
    assert response.status_code == 200
    assert response.json() == {"rows": 1, "created": 1, "updated": 0, "failed": 0, "errors": []}
    customer = Customer.objects.get(external_id="erp-1")
    assert (customer.phone, customer.email) == ("+79123456789", "anna@example.com")
    assert customer.attributes == {"tier": "gold", "points": 10}
    assert Card.objects.get(customer=customer).number == "AB12"


def test_bulk_updates_a_known_external_id_writing_only_the_fields_sent():
    make_customer(external_id="erp-2", first_name="Old", city="Omsk")
    client, _ = token_client()
    body = bulk(client, [{"external_id": "erp-2", "first_name": "New"}]).json()
    assert (body["created"], body["updated"]) == (0, 1)
    customer = Customer.objects.get(external_id="erp-2")
    assert (customer.first_name, customer.city) == ("New", "Omsk")


def test_a_json_number_is_accepted_as_an_external_id():
    client, _ = token_client()
    assert bulk(client, [{"external_id": 12345}]).json()["created"] == 1
    assert Customer.objects.filter(external_id="12345").exists()


def test_bad_rows_are_skipped_and_listed_by_position_while_the_rest_load():
    client, _ = token_client()
    rows = [
        {"external_id": "ok-1"},
        {"external_id": "bad-date", "birth_date": "01.04.1990"},
        {"external_id": "ok-2", "gender": "x"},
    ]
    body = bulk(client, rows).json()
    assert (body["rows"], body["created"], body["failed"]) == (3, 1, 2)
    assert [(e["line"], e["field"], e["code"]) for e in body["errors"]] == [
        (2, "birth_date", "date_invalid"),
        (3, "gender", "gender_invalid"),
    ]
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["ok-1"]


def test_a_value_of_the_wrong_json_type_refuses_the_request_naming_the_row():
    client, _ = token_client()
    response = bulk(client, [{"first_name": "A"}, {"first_name": {"nested": 1}}])
    assert_error(response, 422, "validation_error", "customers.1.first_name")
    assert not Customer.objects.exists()


def test_an_unknown_field_refuses_the_request():
    client, _ = token_client()
    response = bulk(client, [{"frist_name": "A"}])
    assert_error(response, 422, "validation_error", "customers.0.frist_name")


def test_an_empty_attribute_name_refuses_the_request_before_any_write():
    client, _ = token_client()
    response = bulk(client, [{"external_id": "a"}, {"attributes": {" ": 1}}])
    assert_error(response, 422, "unknown_columns")
    assert not Customer.objects.exists()


def test_more_than_ten_thousand_rows_is_422():
    client, _ = token_client()
    assert_error(bulk(client, [{}] * 10_001), 422, "validation_error", "customers")


def test_bulk_needs_the_write_scope():
    client, _ = token_client("read")
    assert_error(bulk(client, [{"first_name": "A"}]), 403, "missing_scope")


# --- Profile and lookup -----------------------------------------------------------------------


def test_the_profile_has_identifiers_cards_and_receipt_metrics():
    customer = make_customer(
        external_id="erp-9", email="a@b.ru", email_raw="A@B.ru", attributes={"k": 1}
    )
    Card.objects.create(number="C1", customer=customer)
    CustomerStats.objects.create(customer=customer, receipt_count=2, total_amount=Decimal("10.50"))
    client, _ = token_client("read")
    body = send(client, "GET", f"/customers/{customer.pk}").json()
    assert (body["sc_id"], body["external_id"], body["email"], body["email_raw"]) == (
        customer.pk, "erp-9", "a@b.ru", "A@B.ru",
    )  # fmt: skip
    assert [c["number"] for c in body["cards"]] == ["C1"]
    assert body["stats"]["receipt_count"] == 2
    assert Decimal(body["stats"]["total_amount"]) == Decimal("10.50")
    assert body["attributes"] == {"k": 1}


def test_a_customer_without_receipts_has_null_stats():
    customer = make_customer()
    client, _ = token_client("read")
    assert send(client, "GET", f"/customers/{customer.pk}").json()["stats"] is None


def test_an_unknown_customer_is_404():
    client, _ = token_client("read")
    assert_error(send(client, "GET", "/customers/999999"), 404, "customer_not_found")


def test_lookup_finds_a_customer_by_any_identifier():
    customer = make_customer(phone="+79123456789", external_id="erp-5")
    client, _ = token_client("read")
    by_phone = send(client, "GET", "/customers/lookup?id_type=phone&value=8 (912) 345-67-89")
    assert by_phone.json()["sc_id"] == customer.pk
    by_external = send(client, "GET", "/customers/lookup?id_type=external_id&value=erp-5")
    assert by_external.json()["sc_id"] == customer.pk


def test_lookup_of_nobody_is_404():
    client, _ = token_client("read")
    response = send(client, "GET", "/customers/lookup?id_type=email&value=nobody@example.com")
    assert_error(response, 404, "customer_not_found")


def test_lookup_of_a_shared_identifier_is_409():
    make_customer(email="family@example.com")
    make_customer(email="family@example.com")
    client, _ = token_client("read")
    response = send(client, "GET", "/customers/lookup?id_type=email&value=family@example.com")
    error = assert_error(response, 409, "ambiguous_identifier", "value")
    assert "2 customers" in error["message"]


def test_lookup_of_an_invalid_value_is_422_with_the_reason():
    client, _ = token_client("read")
    response = send(client, "GET", "/customers/lookup?id_type=sc_id&value=0012")
    error = assert_error(response, 422, "invalid_identifier", "value")
    assert error["details"][0]["code"] == "leading_zero"


@pytest.mark.parametrize(
    ("query", "field"),
    [("id_type=passport&value=1", "id_type"), ("id_type=phone", "value"), ("value=1", "id_type")],
)
def test_lookup_with_bad_or_missing_parameters_is_422(query, field):
    client, _ = token_client("read")
    assert_error(send(client, "GET", f"/customers/lookup?{query}"), 422, "validation_error", field)


# --- Receipts ---------------------------------------------------------------------------------


def test_receipts_load_and_refresh_the_customers_metrics():
    customer = make_customer(external_id="erp-r")
    client, _ = token_client()
    rows = [
        {"external_id": "erp-r", "number": "R1", "date": "2024-05-01", "amount": "100.50"},
        {
            "sc_id": customer.pk,
            "number": 2,
            "date": "2024-05-02T10:00:00+03:00",
            "amount": 20,
            "items": 3,
        },
    ]
    body = receipts(client, rows).json()
    assert (body["rows"], body["created"], body["failed"]) == (2, 2, 0)
    assert Receipt.objects.filter(customer=customer).count() == 2
    stats = CustomerStats.objects.get(customer=customer)
    assert (stats.receipt_count, stats.total_amount) == (2, Decimal("120.50"))


def test_a_receipt_of_an_unknown_customer_is_a_row_error():
    client, _ = token_client()
    body = receipts(
        client, [{"external_id": "ghost", "number": "R", "date": "2024-01-01", "amount": 1}]
    ).json()
    assert body["failed"] == 1
    assert body["errors"][0]["code"] == "customer_not_found"


def test_a_receipt_without_its_required_fields_is_422():
    client, _ = token_client()
    response = receipts(client, [{"external_id": "x", "number": "R"}])
    error = assert_error(response, 422, "validation_error")
    assert {d["field"] for d in error["details"]} == {"receipts.0.date", "receipts.0.amount"}
