"""Every bad-input class of quality.md §1: a clear answer, nothing lost, nothing half-done."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest
from django.test import override_settings

from tagbase.audiences.models import Audience, Membership
from tagbase.imports import queries
from tagbase.imports.tests.helpers import identity_holds, run_import
from tagbase.testing import make_customer

pytestmark = pytest.mark.django_db

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))


def customers(*sc_ids: int) -> None:
    for sc_id in sc_ids:
        make_customer(sc_id=sc_id)


def single(data, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("id_type", "sc_id")
    return run_import(data, mode="single", audience_name=kw.pop("audience", "Target"), **kw)


def members(name: str = "Target") -> set[int]:
    aud = Audience.objects.filter(name=name).first()
    if aud is None:
        return set()
    return set(Membership.objects.filter(audience=aud).values_list("customer_id", flat=True))


def rejects(job) -> list[list[str]]:  # type: ignore[no-untyped-def]
    path = queries.rejects_path(job)
    assert path is not None
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))[1:]


# --- Files refused as a whole ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "EMPTY_FILE"),
        (b"\n\n  \n", "EMPTY_FILE"),
        (b"\xef\xbb\xbf", "EMPTY_FILE"),
        (b"phone\n", "NO_DATA_ROWS"),
        (PNG, "BINARY_FILE"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "BINARY_FILE"),
    ],
)
def test_files_without_data_or_not_text_are_rejected_with_a_code(data, code):
    customers(1)
    job = single(data)
    assert (job.status, job.error_code) == ("rejected", code)
    assert job.error_message
    assert not Audience.objects.filter(name="Target").exists()


def test_an_xlsx_workbook_renamed_csv_is_rejected_as_binary():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("xl/workbook.xml", "<workbook/>")
    job = single(buf.getvalue())
    assert (job.status, job.error_code) == ("rejected", "BINARY_FILE")


def test_an_unterminated_quote_is_rejected_with_its_line_and_nothing_applied():
    customers(1, 2, 3)
    job = single(b'1\n2\n"3\n4\n5\n')
    assert (job.status, job.error_code, job.error_line) == ("rejected", "UNTERMINATED_QUOTE", 3)
    assert members() == set()


def test_nul_bytes_reject_the_file_naming_line_and_offset():
    customers(1)
    job = single(b"1\n12\x003\n")
    assert (job.status, job.error_code, job.error_line, job.error_offset) == (
        "rejected",
        "BINARY_FILE",
        2,
        4,
    )
    assert members() == set()


def test_random_bytes_are_rejected():
    import random

    job = single(random.Random(7).randbytes(4096))
    assert job.status == "rejected"
    assert job.error_code in {"BINARY_FILE", "ENCODING"}


# --- Encodings, line endings, delimiters ----------------------------------------------------


def test_line_endings_crlf_lf_cr_and_mixed_give_identical_results():
    customers(1, 2, 3)
    results = []
    for n, eol in enumerate(["\r\n", "\n", "\r", None]):
        text = "1;\r\n2;\n3;\r" if eol is None else eol.join(["1;", "2;", "3;"])
        job = single(text.encode(), audience=f"E{n}")
        results.append((job.rows_read, job.added, job.invalid))
        assert members(f"E{n}") == {1, 2, 3}
    assert len(set(results)) == 1


@pytest.mark.parametrize("bom", [b"", b"\xef\xbb\xbf"])
def test_utf8_with_and_without_bom(bom):
    make_customer(external_id="клиент-1")
    job = single(bom + "клиент-1\n".encode(), id_type="external_id")
    assert job.added == 1
    assert job.encoding.startswith("UTF-8")


def test_windows_1251_per_row_file_is_detected_and_names_are_not_mojibake():
    make_customer(sc_id=10)
    make_customer(sc_id=11)
    text = "10;Лояльные покупатели\n11;Спящие клиенты 90 дней\n" * 20
    job = run_import(text.encode("cp1251"), mode="per_row", id_type="sc_id")
    assert job.status == "succeeded_with_rejections"  # the repeats are duplicates
    assert job.encoding == "Windows-1251"
    assert members("Лояльные покупатели") == {10}
    assert members("Спящие клиенты 90 дней") == {11}


def test_windows_1251_chosen_by_the_user():
    make_customer(sc_id=10)
    job = run_import(
        "10;Ёлка\n".encode("cp1251"), mode="per_row", id_type="sc_id", encoding="cp1251"
    )
    assert members("Ёлка") == {10}
    assert job.added == 1


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom(codec):
    customers(5, 6)
    bom = b"\xff\xfe" if codec == "utf-16-le" else b"\xfe\xff"
    job = single(bom + "5\r\n6\r\n".encode(codec))
    assert (job.added, job.status) == (2, "succeeded")


def test_one_cp1251_line_inside_a_utf8_file_is_a_rejected_row_not_mojibake():
    make_customer(external_id="анна")
    make_customer(external_id="борис")
    data = "анна\n".encode() + "клиент\n".encode("cp1251") + "борис\n".encode()
    job = single(data, id_type="external_id")
    assert job.encoding.startswith("UTF-8")
    assert job.added == 2
    assert job.invalid_by_reason == {"encoding": 1}
    assert [r[0] for r in rejects(job)] == ["2"]


@pytest.mark.parametrize("sep", [";", ",", "\t"])
def test_per_row_delimiters_semicolon_comma_and_tab_are_detected(sep):
    customers(1, 2)
    job = run_import(f"1{sep}A\n2{sep}B\n", mode="per_row", id_type="sc_id")
    assert job.added == 2
    assert members("A") == {1} and members("B") == {2}


def test_excel_sep_line_is_honoured_and_not_a_row():
    customers(1, 2)
    job = run_import("sep=,\n1,A\n2,B\n", mode="per_row", id_type="sc_id")
    assert (job.rows_read, job.added) == (2, 2)


def test_quoted_names_with_delimiters_and_doubled_quotes():
    customers(1)
    job = run_import('1;"VIP; ""gold"""\n', mode="per_row", id_type="sc_id")
    assert members('VIP; "gold"') == {1}
    assert job.added == 1


def test_a_header_line_is_recognised_and_not_counted():
    customers(1, 2)
    job = run_import("Идентификатор;Аудитория\n1;A\n2;A\n", mode="per_row", id_type="sc_id")
    assert job.has_header
    assert (job.rows_read, job.added) == (2, 2)


def test_blank_lines_anywhere_and_no_final_newline():
    customers(1, 2)
    job = single("\n1;\n\n   \n2")
    assert (job.rows_read, job.blank, job.added) == (5, 3, 2)
    assert identity_holds(job)


@override_settings(TAGBASE_IMPORT_MAX_LINE_BYTES=256)
def test_a_line_longer_than_the_limit_is_rejected_and_the_rest_applied():
    customers(1, 2)
    job = single("1\n" + "9" * 1000 + "\n2\n")
    assert job.added == 2
    assert job.invalid_by_reason == {"line_too_long": 1}


# --- Values ---------------------------------------------------------------------------------


def test_wrong_number_of_columns_is_a_row_error():
    customers(1, 2)
    job = single("1\n2;extra\n")
    assert job.added == 1
    assert job.invalid_by_reason == {"extra_columns": 1}


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("1.23457E+15", "spreadsheet_exponent"),
        ("1 234 567", "spreadsheet_grouping"),
        ("0001234", "leading_zero"),
        ("١٢٣", "non_ascii_digit"),
        ("12\u202e3", "control_character"),
        ("12\u200b3", "control_character"),
    ],
)
def test_damaged_or_hostile_ids_are_rejected_with_a_reason(value, code):
    customers(1)
    job = single(f"1\n{value}\n")
    assert job.added == 1
    assert job.invalid_by_reason == {code: 1}, job.invalid_by_reason
    assert rejects(job)[0][2] == code


def test_surrounding_spaces_nbsp_zwsp_and_bom_are_trimmed_and_full_width_digits_match():
    customers(12, 34, 56, 78)
    job = single("  12 \n\u00a034\u00a0\n\u200b56\ufeff\n\uff17\uff18\n")
    assert job.added == 4, job.invalid_by_reason
    assert members() == {12, 34, 56, 78}


def test_leading_zeros_are_significant_for_partner_ids():
    make_customer(external_id="0001234")
    make_customer(external_id="1234")
    job = single("0001234\n", id_type="external_id")
    cid = Membership.objects.get().customer_id
    assert job.added == 1
    from tagbase.customers.models import Customer

    assert Customer.objects.get(sc_id=cid).external_id == "0001234"


def test_every_local_phone_habit_matches_the_same_customer_and_repeats_are_duplicates():
    make_customer(phone="+79123456789", phone_raw="+7 912 345-67-89")
    text = "+7 (912) 345-67-89\n8 912 345 67 89\n79123456789\n9123456789\n"
    job = single(text, id_type="phone")
    assert (job.added, job.duplicate_in_file) == (1, 3)
    assert identity_holds(job)


def test_emails_match_case_insensitively():
    make_customer(email="anna@example.com", email_raw="Anna@Example.com")
    job = single("ANNA@EXAMPLE.COM\n", id_type="email")
    assert job.added == 1


def test_a_shared_phone_is_ambiguous_and_applied_to_nobody():
    make_customer(phone="+79990000000")
    make_customer(phone="+79990000000")
    job = single("+79990000000\n", id_type="phone")
    assert (job.ambiguous, job.added) == (1, 0)
    assert rejects(job)[0][2] == "ambiguous"


def test_two_cards_of_one_customer_are_one_add_and_one_duplicate():
    from tagbase.customers.models import Card

    c = make_customer()
    Card.objects.create(number="1111", customer=c)
    Card.objects.create(number="2222", customer=c)
    job = single("1111\n22 22\n", id_type="card")
    assert (job.added, job.duplicate_in_file) == (1, 1)


def test_unknown_ids_are_reported_not_guessed_and_no_customer_is_created():
    from tagbase.customers.models import Customer

    customers(1)
    job = single("1\n2\n3\n")
    assert (job.added, job.not_found) == (1, 2)
    assert Customer.objects.count() == 1
    assert [(r[0], r[2]) for r in rejects(job)] == [("2", "not_found"), ("3", "not_found")]


def test_formula_like_values_are_escaped_in_the_rejects_report():
    job = single('=HYPERLINK("x")\n+1\n@SUM(A1)\n', id_type="external_id")
    assert job.not_found == 3
    for row in rejects(job):
        assert row[1].startswith("'"), row


def test_html_in_values_is_stored_as_text():
    job = single("<script>alert(1)</script>\n", id_type="external_id")
    assert rejects(job)[0][1] == "<script>alert(1)</script>"


# --- Per-row audiences ----------------------------------------------------------------------


def test_per_row_empty_audience_name_is_a_row_error():
    customers(1, 2)
    job = run_import("1;\n2;B\n", mode="per_row", id_type="sc_id")
    assert job.invalid_by_reason == {"audience_name_empty": 1}
    assert members("B") == {2}


def test_per_row_names_differing_in_case_spaces_or_unicode_form_are_one_audience():
    customers(1, 2, 3)
    job = run_import(
        "1;Café VIP\n2; CAFÉ VIP \n3;Cafe\u0301 vip\n", mode="per_row", id_type="sc_id"
    )
    assert Audience.objects.count() == 1
    assert members(Audience.objects.get().name) == {1, 2, 3}
    assert job.audiences_created == ["Café VIP"]


@override_settings(TAGBASE_IMPORT_MAX_NEW_AUDIENCES=3)
def test_too_many_new_audiences_rejects_the_whole_file_and_applies_nothing():
    customers(*range(1, 6))
    job = run_import(
        "".join(f"{i};New {i}\n" for i in range(1, 6)), mode="per_row", id_type="sc_id"
    )
    assert (job.status, job.error_code) == ("rejected", "TOO_MANY_NEW_AUDIENCES")
    assert Audience.objects.count() == 0


def test_hostile_file_names_are_stored_under_a_generated_name_and_cleaned_for_display():
    customers(1)
    job = single("1\n", file_name="../../etc/\u202ex.csv" + "a" * 300)
    assert "/" not in job.stored_name and job.stored_name.endswith(".csv")
    assert "\u202e" not in job.file_name and "/" not in job.file_name
    assert len(job.file_name) <= 255


@override_settings(TAGBASE_IMPORT_MAX_BYTES=10)
def test_an_upload_over_the_limit_leaves_no_job_and_no_file(settings):
    from tagbase.imports import services
    from tagbase.imports.models import ImportJob
    from tagbase.imports.pipeline import import_dir

    before = set(import_dir().iterdir())
    with pytest.raises(services.UploadTooLarge):
        single(b"1\n" * 100)
    assert ImportJob.objects.count() == 0
    assert set(import_dir().iterdir()) == before


def test_per_row_duplicates_count_per_audience_and_unknown_repeats_are_duplicates():
    customers(1, 2)
    job = run_import("1;A\n1;a\n1;B\n9;A\n9;A\n8;A\n2;A\n", mode="per_row", id_type="sc_id")
    assert (job.added, job.duplicate_in_file, job.not_found) == (3, 2, 2)
    assert members("A") == {1, 2} and members("B") == {1}
    assert [(r[0], r[2]) for r in rejects(job)] == [
        ("2", "duplicate_in_file"),
        ("4", "not_found"),
        ("5", "duplicate_in_file"),
        ("6", "not_found"),
    ]
    assert identity_holds(job)
