"""Loading customers: upsert by external_id, partial rows, contacts, attributes, cards, row and
file errors, and CSV files in their common shapes."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.test import override_settings

from tagbase.customers import services
from tagbase.customers.models import Card, Customer
from tagbase.customers.reports import MAX_LISTED_ERRORS, FileRejected
from tagbase.customers.services import load_customers_csv, upsert_customers
from tagbase.testing import make_customer, system_actor

pytestmark = pytest.mark.django_db
ACTOR = system_actor()


def upsert(*rows):
    return upsert_customers(list(rows), actor=ACTOR)


def by_ext(external_id: str) -> Customer:
    return Customer.objects.get(external_id=external_id)


def codes(report) -> list[tuple[int, str, str]]:
    return [(e.line, e.field, e.code) for e in report.errors]


def write(tmp_path, text: str, name: str = "in.csv", encoding: str = "utf-8"):
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


# --- upsert ------------------------------------------------------------------------------------


def test_rows_with_new_external_ids_create_customers_with_every_given_field():
    report = upsert(
        {
            "external_id": "E1",
            "last_name": " Иванова ",
            "first_name": "Анна",
            "middle_name": "Петровна",
            "gender": "Ж",
            "birth_date": "1985-03-17",
            "country": "Россия",
            "city": "Казань",
            "registered_at": "2023-05-01T10:30:00+03:00",
            "phone": "8 (912) 345-67-89",
            "email": "Anna@Mail.RU",
        }
    )
    assert report.as_dict() == {"rows": 1, "created": 1, "updated": 0, "failed": 0, "errors": []}
    c = by_ext("E1")
    assert (c.last_name, c.first_name, c.middle_name) == ("Иванова", "Анна", "Петровна")
    assert (c.gender, c.birth_date, c.country, c.city) == (
        "f",
        date(1985, 3, 17),
        "Россия",
        "Казань",
    )
    assert c.registered_at == datetime(2023, 5, 1, 7, 30, tzinfo=UTC)
    assert (c.phone, c.phone_raw) == ("+79123456789", "8 (912) 345-67-89")
    assert (c.email, c.email_raw) == ("anna@mail.ru", "Anna@Mail.RU")


def test_a_known_external_id_updates_that_customer_instead_of_creating_one():
    upsert({"external_id": "E1", "city": "Kazan", "first_name": "Anna"})
    report = upsert({"external_id": "E1", "city": "Perm", "first_name": "Anya"})
    assert (report.created, report.updated) == (0, 1)
    assert Customer.objects.count() == 1
    assert (by_ext("E1").city, by_ext("E1").first_name) == ("Perm", "Anya")


def test_an_update_writes_only_the_columns_the_row_has():
    upsert({"external_id": "E1", "city": "Kazan", "first_name": "Anna", "phone": "89123456789"})
    before = by_ext("E1")
    upsert({"external_id": "E1", "city": "Perm"})
    after = by_ext("E1")
    assert after.city == "Perm"
    assert (after.first_name, after.phone, after.registered_at) == (
        "Anna",
        "+79123456789",
        before.registered_at,
    )
    assert after.updated_at > before.updated_at


def test_an_empty_value_clears_that_field():
    upsert({"external_id": "E1", "city": "Kazan", "email": "a@b.ru", "birth_date": "1990-01-01"})
    upsert({"external_id": "E1", "city": "", "email": "", "birth_date": ""})
    c = by_ext("E1")
    assert (c.city, c.email, c.email_raw, c.birth_date) == ("", None, "", None)


def test_rows_without_external_id_create_new_customers_every_time():
    r1 = upsert({"first_name": "A"}, {"external_id": "", "first_name": "B"})
    r2 = upsert({"first_name": "A"})
    assert (r1.created, r2.created) == (2, 1)
    assert Customer.objects.filter(external_id__isnull=True).count() == 3


def test_the_same_external_id_twice_in_one_load_applies_both_rows_in_order():
    report = upsert(
        {"external_id": "E1", "city": "Kazan", "first_name": "Anna"},
        {"external_id": "E1", "city": "Perm"},
    )
    assert (report.created, report.updated) == (1, 1)
    c = by_ext("E1")
    assert (c.city, c.first_name) == ("Perm", "Anna")


def test_invalid_contacts_are_kept_raw_with_no_normalised_value_and_are_not_row_errors():
    report = upsert({"external_id": "E1", "phone": "12345", "email": "not-an-email"})
    assert report.failed == 0
    c = by_ext("E1")
    assert (c.phone, c.phone_raw, c.phone_valid) == (None, "12345", False)
    assert (c.email, c.email_raw, c.email_valid) == (None, "not-an-email", False)


@override_settings(TAGBASE_DEFAULT_PHONE_REGION="GB")
def test_phones_without_a_country_code_are_read_in_the_configured_region():
    upsert({"external_id": "E1", "phone": "020 7946 0958"})
    assert by_ext("E1").phone == "+442079460958"


def test_gender_accepts_every_documented_spelling_in_any_case():
    spellings = ["m", "M", "male", "MALE", "м", "\u041c", "f", "Female", "ж", "Ж", ""]
    report = upsert(*({"external_id": f"E{i}", "gender": g} for i, g in enumerate(spellings)))
    assert report.failed == 0
    got = [by_ext(f"E{i}").gender for i in range(len(spellings))]
    assert got == ["m"] * 6 + ["f"] * 4 + [""]


def test_bad_values_are_row_errors_naming_the_line_and_every_bad_field():
    report = upsert(
        {"external_id": "E1", "birth_date": "17.03.1985", "gender": "x"},
        {"external_id": "E2", "birth_date": "1985-02-30"},
        {"external_id": "E3", "registered_at": "yesterday", "last_name": "x" * 101},
        {"external_id": "E4", "birth_date": "2999-01-01", "city": "bad\x00city"},
        {"external_id": "E5", "city": "fine"},
    )
    assert (report.rows, report.created, report.failed) == (5, 1, 4)
    # Problems are listed in the row's column order.
    assert codes(report) == [
        (1, "birth_date", "date_invalid"),
        (1, "gender", "gender_invalid"),
        (2, "birth_date", "date_invalid"),
        (3, "registered_at", "datetime_invalid"),
        (3, "last_name", "too_long"),
        (4, "birth_date", "date_in_future"),
        (4, "city", "control_character"),
    ]
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["E5"]
    assert all(e.message for e in report.errors)


def test_error_messages_do_not_repeat_the_values():
    report = upsert({"external_id": "E1", "birth_date": "1977/04/05", "gender": "secret-g"})
    assert len(report.errors) == 2
    assert not any("1977" in e.message or "secret" in e.message for e in report.errors)


def test_an_invalid_external_id_is_a_row_error():
    report = upsert({"external_id": "x" * 101}, {"external_id": "a\u202eb"})
    assert codes(report) == [
        (1, "external_id", "too_long"),
        (2, "external_id", "control_character"),
    ]


def test_attribute_columns_merge_into_the_attributes_and_an_empty_value_removes_one():
    upsert({"external_id": "E1", "attr.tier": "gold", "attr.pet": "cat"})
    upsert({"external_id": "E1", "attr.pet": "", "attr.Shoe size": " 42 "})
    assert by_ext("E1").attributes == {"tier": "gold", "Shoe size": "42"}


def test_attributes_from_an_api_row_keep_their_json_types():
    upsert({"external_id": "E1", "attr.score": 12.5, "attr.tags": ["a", "b"], "attr.vip": True})
    assert by_ext("E1").attributes == {"score": 12.5, "tags": ["a", "b"], "vip": True}


def test_unknown_columns_reject_the_whole_input_before_any_write():
    with pytest.raises(FileRejected) as exc:
        upsert({"external_id": "E1"}, {"external_id": "E2", "shoe": "42", "Colour": "red"})
    assert exc.value.code == "unknown_columns"
    assert "'shoe'" in exc.value.message and "'Colour'" in exc.value.message
    assert Customer.objects.count() == 0


def test_an_attribute_name_with_a_control_character_is_an_unknown_column():
    with pytest.raises(FileRejected) as exc:
        upsert({"external_id": "E1", "attr.a\x00b": "x"})
    assert exc.value.code == "unknown_columns"


def test_column_names_are_matched_ignoring_case_and_surrounding_spaces():
    upsert({" External_ID ": "E1", "CITY": "Omsk"})
    assert by_ext("E1").city == "Omsk"


def test_a_card_column_attaches_a_normalised_card_to_the_customer():
    report = upsert({"external_id": "E1", "card": " 1234 5678-ab "})
    assert report.failed == 0
    card = Card.objects.get()
    assert (card.number, card.customer.external_id) == ("12345678AB", "E1")
    again = upsert({"external_id": "E1", "card": "12345678AB"})
    assert (again.failed, again.updated, Card.objects.count()) == (0, 1, 1)


def test_a_card_of_another_customer_is_a_row_error_and_the_row_writes_nothing():
    other = make_customer(external_id="OTHER")
    Card.objects.create(number="777", customer=other)
    report = upsert(
        {"external_id": "E1", "card": "777", "city": "Omsk"},
        {"card": "7 7 7", "city": "Tver"},
        {"external_id": "E2", "card": "888"},
        {"external_id": "E3", "card": "888"},
    )
    assert codes(report) == [
        (1, "card", "card_taken"),
        (2, "card", "card_taken"),
        (4, "card", "card_taken"),
    ]
    assert report.created == 1
    assert set(Customer.objects.values_list("external_id", flat=True)) == {"OTHER", "E2"}
    assert Card.objects.get(number="888").customer.external_id == "E2"


def test_an_invalid_card_is_a_row_error():
    report = upsert({"external_id": "E1", "card": "12#34"})
    assert codes(report) == [(1, "card", "card_invalid")]


def test_non_object_rows_are_row_errors():
    report = upsert_customers([{"external_id": "E1"}, ["E2"], None], actor=ACTOR)
    assert (report.created, report.failed) == (1, 2)
    assert codes(report) == [(2, "row", "row_invalid"), (3, "row", "row_invalid")]


@override_settings()
def test_batches_split_a_long_load_and_count_every_row(monkeypatch, django_assert_max_num_queries):
    monkeypatch.setattr(services, "BATCH_SIZE", 50)
    rows = [{"external_id": f"E{i}", "city": "Omsk", "card": f"C{i}"} for i in range(500)]
    with django_assert_max_num_queries(10 * 10):  # ten batches, a handful of statements each
        report = upsert(*rows)
    assert (report.rows, report.created) == (500, 500)
    assert Card.objects.count() == 500


def test_the_error_list_is_capped_but_every_failed_row_is_counted():
    rows = [{"external_id": f"E{i}", "gender": "?"} for i in range(MAX_LISTED_ERRORS + 5)]
    report = upsert(*rows)
    assert report.failed == MAX_LISTED_ERRORS + 5
    assert len(report.errors) == MAX_LISTED_ERRORS


# --- CSV files ------------------------------------------------------------------------------


def test_a_csv_with_a_bom_and_semicolons_loads_with_real_line_numbers(tmp_path):
    text = (
        "\ufeffexternal_id;last_name;gender;birth_date;phone\r\n"
        "E1;Иванов;м;1980-01-02;+7 912 345-67-89\r\n"
        "\r\n"
        "E2;Петрова;ж;02.01.1980;\r\n"
        'E3;"Сидоров; мл.";m;1990-12-31;89160000000\r\n'
    )
    report = load_customers_csv(write(tmp_path, text), actor=ACTOR)
    assert (report.rows, report.created, report.failed) == (3, 2, 1)
    assert codes(report) == [(4, "birth_date", "date_invalid")]
    assert by_ext("E1").last_name == "Иванов"
    assert by_ext("E3").last_name == "Сидоров; мл."


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_the_delimiter_is_detected_from_the_header(tmp_path, delimiter):
    text = delimiter.join(["external_id", "city", "first_name"]) + "\n"
    text += delimiter.join(["E1", "Omsk", "Anna"]) + "\n"
    load_customers_csv(write(tmp_path, text), actor=ACTOR)
    c = by_ext("E1")
    assert (c.city, c.first_name) == ("Omsk", "Anna")


def test_excels_sep_line_and_a_trailing_delimiter_on_every_line_are_understood(tmp_path):
    text = "sep=;\nexternal_id;city;\nE1;Omsk;\nE2;Tver;\n"
    report = load_customers_csv(write(tmp_path, text), actor=ACTOR)
    assert (report.created, report.failed) == (2, 0)
    assert by_ext("E2").city == "Tver"


def test_lf_crlf_and_cr_line_endings_give_the_same_lines(tmp_path):
    for ending in ("\n", "\r\n", "\r"):
        Customer.objects.all().delete()
        text = ending.join(["external_id,birth_date", "E1,1980-01-01", "", "E2,bad", "E3,"])
        report = load_customers_csv(write(tmp_path, text), actor=ACTOR)
        assert codes(report) == [(4, "birth_date", "date_invalid")], repr(ending)
        assert report.created == 2


def test_a_quoted_field_over_several_lines_reports_the_line_it_starts_on(tmp_path):
    text = 'external_id,city,gender\nE1,"Omsk\nCentre",m\nE2,Tver,?\n'
    report = load_customers_csv(write(tmp_path, text), actor=ACTOR)
    assert codes(report) == [(4, "gender", "gender_invalid")]
    assert by_ext("E1").city == "Omsk\nCentre"


def test_a_row_with_the_wrong_number_of_fields_is_a_row_error(tmp_path):
    text = "external_id,city\nE1,Omsk,extra\nE2\nE3,Tver\n"
    report = load_customers_csv(write(tmp_path, text), actor=ACTOR)
    assert codes(report) == [(2, "row", "column_count"), (3, "row", "column_count")]
    assert (report.rows, report.created) == (3, 1)


def test_a_header_only_file_loads_nothing_and_is_not_an_error(tmp_path):
    report = load_customers_csv(write(tmp_path, "external_id,city\n"), actor=ACTOR)
    assert report.as_dict() == {"rows": 0, "created": 0, "updated": 0, "failed": 0, "errors": []}


@pytest.mark.parametrize(
    ("content", "code", "line"),
    [
        (b"", "empty", None),
        (b"\n\n  \n", "no_header", None),
        (b"external_id,shoe\nE1,42\n", "unknown_columns", None),
        (b"external_id,,city\nE1,,Omsk\n", "header_invalid", 1),
        (b"external_id,city,City\n", "header_invalid", None),
        (b"external_id,city\nE1,Omsk\nE2,\xcf\xe5\xf0\xec\xfc\n", "encoding", 3),
        ("external_id,city\nE1,Omsk\n".encode("utf-16"), "encoding", 1),
        (b"PK\x03\x04\x14\x00\x06\x00rest-of-a-workbook", "binary", 1),
        (b"external_id,city\nE1,Om\x00sk\n", "binary", 2),
        (b'external_id,city\nE1,"Omsk\nE2,Tver\n', "csv_malformed", 2),
    ],
)
def test_a_file_refused_as_a_whole_writes_nothing(tmp_path, content, code, line):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(FileRejected) as exc:
        load_customers_csv(path, actor=ACTOR)
    assert exc.value.code == code
    assert exc.value.line == line
    assert Customer.objects.count() == 0


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(FileRejected) as exc:
        load_customers_csv(tmp_path / "nope.csv", actor=ACTOR)
    assert exc.value.code == "file_not_found"


def test_a_bad_byte_late_in_a_long_file_is_refused_with_its_line_before_any_write(tmp_path):
    lines = ["external_id,city"] + [f"E{i},Omsk" for i in range(30_000)]
    data = ("\n".join(lines) + "\n").encode() + b"E-last,\xff\n"
    path = tmp_path / "late.csv"
    path.write_bytes(data)
    with pytest.raises(FileRejected) as exc:
        load_customers_csv(path, actor=ACTOR)
    assert (exc.value.code, exc.value.line) == ("encoding", 30_002)
    assert Customer.objects.count() == 0


def test_progress_is_reported_while_a_file_loads(tmp_path, monkeypatch):
    monkeypatch.setattr(services, "BATCH_SIZE", 5_000)
    lines = ["external_id"] + [f"E{i}" for i in range(25_000)]
    path = write(tmp_path, "\n".join(lines) + "\n")
    seen: list[tuple[int, int, int]] = []
    report = load_customers_csv(path, actor=ACTOR, progress=lambda *a: seen.append(a))
    assert report.created == 25_000
    assert len(seen) >= 3
    assert seen[-1] == (25_000, path.stat().st_size, path.stat().st_size)
    assert [s[1] for s in seen] == sorted(s[1] for s in seen)
