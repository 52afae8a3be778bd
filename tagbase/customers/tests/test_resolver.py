"""Resolving raw identifiers to customers: every type, every outcome, and set-based cost."""

from __future__ import annotations

import pytest

from tagbase.customers.models import Card
from tagbase.customers.queries import (
    AmbiguousIdentifier,
    find_customer,
    match_identifiers,
    resolve_identifiers,
)
from tagbase.lib.identifiers import IdType, InvalidIdentifier
from tagbase.testing import make_customer, make_customers

pytestmark = pytest.mark.django_db


def accounted(r) -> int:
    return r.matched + len(r.not_found) + len(r.ambiguous) + len(r.invalid) + r.duplicates


def test_sc_ids_resolve_to_those_customers_and_unknown_ones_are_not_found():
    ids = make_customers(3)
    r = resolve_identifiers("sc_id", [str(ids[2]), str(ids[0]), "999999999"])
    assert r.id_type == IdType.SC_ID
    assert r.customer_ids == sorted([ids[0], ids[2]])
    assert r.matched == 2
    assert r.not_found == ["999999999"]
    assert (r.ambiguous, r.invalid, r.duplicates) == ([], [], 0)


def test_sc_ids_with_leading_zeros_or_spreadsheet_damage_are_invalid_with_a_reason():
    make_customers(1)
    r = resolve_identifiers(IdType.SC_ID, ["0012", "1.23457E+15", "abc", ""])
    assert [x.code for x in r.invalid] == [
        "leading_zero",
        "spreadsheet_exponent",
        "not_a_number",
        "empty",
    ]
    assert [x.value for x in r.invalid] == ["0012", "1.23457E+15", "abc", ""]
    assert r.customer_ids == [] and r.matched == 0


def test_external_ids_match_exactly_keeping_case_and_leading_zeros():
    a = make_customer(external_id="0012")
    b = make_customer(external_id="AbC")
    r = resolve_identifiers("external_id", [" 0012 ", "12", "abc", "AbC"])
    assert r.customer_ids == sorted([a.pk, b.pk])
    assert r.not_found == ["12", "abc"]


def test_phones_written_in_every_local_habit_match_the_same_customer():
    c = make_customer(phone="+79123456789", phone_raw="8 912 345-67-89")
    habits = ["+7 (912) 345-67-89", "8 912 345 67 89", "79123456789", "9123456789"]
    r = resolve_identifiers("phone", habits)
    assert r.customer_ids == [c.pk]
    assert r.matched == 1
    assert r.duplicates == 3  # all four normalise to the same number


def test_a_phone_shared_by_two_customers_is_ambiguous_and_matches_nobody():
    make_customer(phone="+79123456789")
    make_customer(phone="+79123456789")
    alone = make_customer(phone="+79161234567")
    r = resolve_identifiers("phone", ["89123456789", "+79161234567"])
    assert r.ambiguous == ["89123456789"]
    assert r.customer_ids == [alone.pk]
    assert r.matched == 1


def test_emails_match_whatever_their_case():
    c = make_customer(email="ivan@mail.ru", email_raw="Ivan@Mail.ru")
    r = resolve_identifiers("email", ["IVAN@MAIL.RU", " ivan@mail.ru", "nobody@mail.ru", "x@"])
    assert r.customer_ids == [c.pk]
    assert r.duplicates == 1
    assert r.not_found == ["nobody@mail.ru"]
    assert [x.code for x in r.invalid] == ["email_invalid"]


def test_a_shared_email_is_ambiguous():
    make_customer(email="family@mail.ru")
    make_customer(email="family@mail.ru")
    r = resolve_identifiers("email", ["Family@Mail.ru"])
    assert r.ambiguous == ["Family@Mail.ru"] and r.customer_ids == []


def test_card_numbers_match_with_spaces_hyphens_and_any_case():
    c = make_customer()
    Card.objects.create(number="1234567890AB", customer=c)
    r = resolve_identifiers("card", ["1234 5678 90ab", "1234-5678-90AB", "0000", "12#4"])
    assert r.customer_ids == [c.pk]
    assert (r.matched, r.duplicates) == (1, 1)
    assert r.not_found == ["0000"]
    assert [x.code for x in r.invalid] == ["card_invalid"]


def test_two_cards_of_one_customer_are_two_matches_and_one_customer():
    c = make_customer()
    Card.objects.create(number="111", customer=c)
    Card.objects.create(number="222", customer=c)
    r = resolve_identifiers("card", ["111", "222"])
    assert r.customer_ids == [c.pk]
    assert r.matched == 2


def test_the_first_occurrence_counts_and_later_repeats_are_duplicates_in_input_order():
    ids = make_customers(2)
    raw = ["777777777", str(ids[1]), "777777777", "x", str(ids[1]), "x", str(ids[0])]
    r = resolve_identifiers("sc_id", raw)
    assert r.not_found == ["777777777"]
    assert r.duplicates == 2  # the repeated unknown id and the repeated known id
    assert [x.value for x in r.invalid] == ["x", "x"]  # invalid values have no normal form
    assert r.customer_ids == sorted(ids)
    assert accounted(r) == len(raw)


def test_not_found_and_ambiguous_keep_the_first_raw_form_in_input_order():
    make_customer(phone="+79123456789")
    make_customer(phone="+79123456789")
    r = resolve_identifiers("phone", ["+79160000001", "8 912 345 67 89", "89160000001"])
    assert r.not_found == ["+79160000001"]
    assert r.ambiguous == ["8 912 345 67 89"]
    assert r.duplicates == 1


def test_an_unknown_identifier_type_is_refused():
    with pytest.raises(ValueError, match="unknown identifier type"):
        resolve_identifiers("passport", ["1"])


def test_an_empty_list_resolves_to_nothing_without_a_query(django_assert_num_queries):
    with django_assert_num_queries(0):
        r = resolve_identifiers("sc_id", [])
    assert accounted(r) == 0


@pytest.mark.parametrize("id_type", ["sc_id", "external_id", "phone", "email", "card"])
def test_resolving_five_thousand_values_takes_one_query(id_type, django_assert_max_num_queries):
    values = {
        "sc_id": [str(i) for i in range(1, 5001)],
        "external_id": [f"E{i}" for i in range(5000)],
        "phone": [f"+7916{i:07d}" for i in range(5000)],
        "email": [f"user{i}@example.com" for i in range(5000)],
        "card": [f"C{i:08d}" for i in range(5000)],
    }[id_type]
    with django_assert_max_num_queries(1):
        r = resolve_identifiers(id_type, values)
    assert accounted(r) == 5000


def test_twelve_thousand_values_take_one_query_per_chunk_of_five_thousand(
    django_assert_max_num_queries,
):
    ids = make_customers(3)
    unknown = [str(i) for i in range(10**12, 10**12 + 12_000)]
    values = [*unknown[:6000], *map(str, ids), *unknown[6000:], str(ids[-1])]
    with django_assert_max_num_queries(3):
        r = resolve_identifiers("sc_id", values)
    assert r.customer_ids == ids
    assert (r.matched, len(r.not_found), r.duplicates) == (3, 12_000, 1)


def test_match_identifiers_lists_every_holder_of_a_value():
    a = make_customer(phone="+79123456789")
    b = make_customer(phone="+79123456789")
    assert match_identifiers("phone", ["+79123456789", "+79160000000"]) == {
        "+79123456789": sorted([a.pk, b.pk])
    }


def test_find_customer_returns_the_one_customer_or_none():
    c = make_customer(external_id="X-1", email="a@b.ru")
    Card.objects.create(number="777", customer=c)
    assert find_customer("external_id", " X-1 ") == c
    assert find_customer("email", "A@B.RU") == c
    assert find_customer("card", "7 7 7") == c
    assert find_customer("sc_id", str(c.pk)) == c
    assert find_customer("sc_id", "999999999") is None


def test_find_customer_refuses_a_shared_phone_and_a_bad_value():
    make_customer(phone="+79123456789")
    make_customer(phone="+79123456789")
    with pytest.raises(AmbiguousIdentifier) as exc:
        find_customer("phone", "89123456789")
    assert exc.value.count == 2
    assert "9123456789" not in str(exc.value)  # the message does not repeat personal data
    with pytest.raises(InvalidIdentifier) as bad:
        find_customer("sc_id", "0012")
    assert bad.value.code == "leading_zero"
