"""Reading uploaded CSV files: every file-reading class of bad input in quality.md §1 gives
either a file rejection (code, message, line/offset) or records with the right fields, line
numbers and row issues."""

# Cyrillic text and look-alike characters are what several of these tests are about.
# ruff: noqa: RUF001

import codecs
import io
import pickle
import random
import tracemalloc
import zipfile
from unittest import mock

import pytest

from tagbase.lib import csvread
from tagbase.lib.csvread import (
    FILE_REJECTION_CODES,
    ROW_ISSUE_CODES,
    Dialect,
    FileRejected,
    Record,
    read_records,
    sniff,
    split_fields,
)

RUSSIAN = "Иванов;Лояльные покупатели\r\nПетрова;Новые клиенты\r\nСидоров;VIP «Золото»\r\n"
RUSSIAN_PLAIN = "Иванов;Лояльные покупатели\r\nПетрова;Новые клиенты\r\nСидоров;ООО Ромашка\r\n"


def write(tmp_path, data, name="upload.csv", encoding="utf-8"):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def read(path, **options):
    """sniff() then every record; the usual way the pipeline reads a file."""
    read_options = {
        key: options.pop(key)
        for key in ("max_line_bytes", "skip_until_line", "progress")
        if key in options
    }
    return list(read_records(path, sniff(path, **options), **read_options))


def fields(path, **options):
    return [record.fields for record in read(path, **options)]


def rejected(path, **options):
    """The FileRejected that reading ``path`` raises (fails if the file is read)."""
    with pytest.raises(FileRejected) as caught:
        read(path, **options)
    rejection = caught.value
    assert rejection.code in FILE_REJECTION_CODES
    assert rejection.message == str(rejection)
    return rejection


def dialect(encoding="utf-8", delimiter=";", sep_line=False):
    return Dialect(encoding, csvread.ENCODING_LABELS[encoding], delimiter, sep_line, False)


# --- empty, header only, blank lines ---------------------------------------------------------


def test_an_empty_file_is_rejected_as_empty(tmp_path):
    rejection = rejected(write(tmp_path, b""))
    assert rejection.code == "EMPTY_FILE"
    assert "0 bytes" in rejection.message


@pytest.mark.parametrize(
    "data",
    [
        b"   \r\n\t\n\n",
        codecs.BOM_UTF8,
        codecs.BOM_UTF8 + b"\r\n",
        codecs.BOM_UTF16_LE + " \r\n".encode("utf-16-le"),
        "\xa0\u200b\n".encode(),
    ],
    ids=["spaces and newlines", "BOM only", "BOM and a newline", "UTF-16 blanks", "NBSP ZWSP"],
)
def test_a_file_of_only_white_space_or_a_bom_is_rejected_as_empty(tmp_path, data):
    assert rejected(write(tmp_path, data)).code == "EMPTY_FILE"


def test_a_file_with_only_an_excel_sep_line_is_rejected_as_empty(tmp_path):
    rejection = rejected(write(tmp_path, "sep=;\r\n\r\n"))
    assert rejection.code == "EMPTY_FILE"
    assert "sep=" in rejection.message


def test_a_header_only_file_yields_the_header_as_its_one_record(tmp_path):
    records = read(write(tmp_path, "customer_id;audience\r\n"))
    assert records == [Record(1, "customer_id;audience", ["customer_id", "audience"], None, False)]


def test_lines_of_only_delimiters_and_white_space_are_blank_records(tmp_path):
    records = read(write(tmp_path, ";\n ; \n\t;\xa0\n"))
    assert [(r.line, r.blank, r.issue) for r in records] == [
        (1, True, None),
        (2, True, None),
        (3, True, None),
    ]
    assert records[1].fields == [" ", " "]


def test_a_file_of_only_blank_lines_read_with_a_given_dialect_gives_only_blank_records(
    tmp_path,
):
    records = list(read_records(write(tmp_path, "\n  \n\r\n\t\n"), dialect()))
    assert [r.line for r in records] == [1, 2, 3, 4]
    assert all(r.blank for r in records)
    assert records[0].fields == [""]


def test_blank_lines_anywhere_are_blank_records_and_keep_the_line_numbers_right(tmp_path):
    records = read(write(tmp_path, "\n\n123\n\n  \n124\n\n"))
    assert [(r.line, r.fields, r.blank) for r in records] == [
        (1, [""], True),
        (2, [""], True),
        (3, ["123"], False),
        (4, [""], True),
        (5, ["  "], True),
        (6, ["124"], False),
        (7, [""], True),
    ]


def test_quoted_empty_fields_are_blank_but_a_quoted_quote_is_not(tmp_path):
    records = read(write(tmp_path, '1;x\n"";" "\n""""\n'))
    assert [r.blank for r in records] == [False, True, False]
    assert records[2].fields == ['"']


@pytest.mark.parametrize("ending", ["", "\n", "\r\n", "\r"])
def test_the_last_record_is_read_with_or_without_a_final_newline(tmp_path, ending):
    assert fields(write(tmp_path, "123\n124" + ending)) == [["123"], ["124"]]


# --- the original documentation's examples ---------------------------------------------------


def test_the_one_column_example_gives_each_identifier_with_its_terminator_field(tmp_path):
    path = write(tmp_path, "123;\n124;\n125;\n245.")
    assert sniff(path).delimiter == ";"
    assert fields(path) == [["123", ""], ["124", ""], ["125", ""], ["245."]]


def test_the_two_column_example_gives_identifier_and_audience_unstripped(tmp_path):
    path = write(tmp_path, "123; Audience 1\n124; Audience 2\n125; Audience 3\n245; Audience 4")
    assert fields(path) == [
        ["123", " Audience 1"],
        ["124", " Audience 2"],
        ["125", " Audience 3"],
        ["245", " Audience 4"],
    ]


# --- encodings -------------------------------------------------------------------------------


def test_utf8_without_bom_is_detected(tmp_path):
    path = write(tmp_path, "1;Лояльные\n2;Новые\n")
    found = sniff(path)
    assert (found.encoding, found.encoding_label, found.detected) == ("utf-8", "UTF-8", True)
    assert fields(path) == [["1", "Лояльные"], ["2", "Новые"]]


@pytest.mark.parametrize("encoding", ["auto", "utf-8"])
def test_a_utf8_bom_is_detected_and_never_part_of_the_first_field(tmp_path, encoding):
    path = write(tmp_path, codecs.BOM_UTF8 + "123;Лояльные\n".encode())
    found = sniff(path, encoding=encoding)
    assert (found.encoding, found.encoding_label) == ("utf-8-sig", "UTF-8 with BOM")
    assert fields(path, encoding=encoding) == [["123", "Лояльные"]]
    # Even read with a dialect that does not expect it, the BOM is not data.
    assert [r.fields for r in read_records(path, dialect("utf-8"))] == [["123", "Лояльные"]]


def test_a_zero_width_no_break_space_in_the_middle_of_the_file_is_passed_through(tmp_path):
    path = write(tmp_path, codecs.BOM_UTF8 + "1\n\ufeff2\n3\ufeff;\ufeff\n".encode())
    assert fields(path) == [["1"], ["\ufeff2"], ["3\ufeff", "\ufeff"]]


def test_a_russian_file_in_windows_1251_is_detected_with_confidence(tmp_path):
    path = write(tmp_path, RUSSIAN, encoding="cp1251")
    found = sniff(path)
    assert (found.encoding, found.encoding_label, found.delimiter) == (
        "cp1251",
        "Windows-1251",
        ";",
    )
    assert fields(path) == [
        ["Иванов", "Лояльные покупатели"],
        ["Петрова", "Новые клиенты"],
        ["Сидоров", "VIP «Золото»"],
    ]


def test_a_one_line_russian_file_in_windows_1251_is_detected(tmp_path):
    path = write(tmp_path, "Иванов;Лояльные покупатели", encoding="cp1251")
    assert sniff(path).encoding == "cp1251"
    assert fields(path) == [["Иванов", "Лояльные покупатели"]]


def test_identifiers_with_one_russian_audience_name_in_windows_1251_are_detected(tmp_path):
    path = write(tmp_path, "123;Audience\n124;Audience\n125;Покупатели\n", encoding="cp1251")
    assert sniff(path).encoding == "cp1251"
    assert fields(path)[2] == ["125", "Покупатели"]


def test_windows_1251_chosen_by_the_user_is_used(tmp_path):
    path = write(tmp_path, RUSSIAN, encoding="cp1251")
    found = sniff(path, encoding="windows-1251")
    assert (found.encoding, found.detected) == ("cp1251", True)  # the delimiter was detected
    assert sniff(path, encoding="cp1251", delimiter=";").detected is False
    assert fields(path, encoding="cp1251")[0] == ["Иванов", "Лояльные покупатели"]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        (RUSSIAN_PLAIN, "koi8_r"),
        (RUSSIAN_PLAIN, "cp866"),
        ("1;Müller\n2;Straße\n3;José Café\n", "cp1252"),
    ],
    ids=["KOI8-R", "DOS cp866", "Windows-1252"],
)
def test_other_single_byte_encodings_are_rejected_not_guessed(tmp_path, text, encoding):
    data = ("12345;ok\n" + text).encode(encoding)
    rejection = rejected(write(tmp_path, data))
    assert rejection.code == "ENCODING"
    first_bad = next(i for i, byte in enumerate(data) if byte > 127)
    assert (rejection.line, rejection.offset) == (2, first_bad)
    assert "UTF-8" in rejection.message
    assert "Windows-1251" in rejection.message


@pytest.mark.parametrize("bom", [codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE])
@pytest.mark.parametrize("encoding", ["auto", "utf-16"])
def test_utf16_with_a_bom_is_read_in_either_byte_order(tmp_path, bom, encoding):
    codec = "utf-16-le" if bom == codecs.BOM_UTF16_LE else "utf-16-be"
    path = write(tmp_path, bom + 'id\tимя\r\n1\t"Ли""са"\r\n2\t😀\r\n'.encode(codec))
    found = sniff(path, encoding=encoding)
    assert (found.encoding, found.encoding_label, found.delimiter) == ("utf-16", "UTF-16", "\t")
    assert fields(path, encoding=encoding) == [["id", "имя"], ["1", 'Ли"са'], ["2", "😀"]]


def test_utf16_chosen_for_a_file_without_a_bom_is_rejected(tmp_path):
    rejection = rejected(write(tmp_path, "1\n2\n"), encoding="utf-16")
    assert rejection.code == "ENCODING"
    assert "byte-order mark" in rejection.message


def test_utf16_without_a_bom_is_rejected_as_an_encoding_not_as_binary(tmp_path):
    rejection = rejected(write(tmp_path, "123;a\r\n124;b\r\n".encode("utf-16-le")))
    assert rejection.code == "ENCODING"
    assert "UTF-16" in rejection.message


def test_utf32_is_rejected_as_an_encoding(tmp_path):
    path = write(tmp_path, "123\n".encode("utf-32"))
    assert rejected(path).code == "ENCODING"
    assert rejected(path, encoding="utf-8").code == "ENCODING"


def test_a_broken_utf16_stream_is_rejected_with_its_offset_and_line(tmp_path):
    good = "1\r\n2\r\n".encode("utf-16-le")
    data = codecs.BOM_UTF16_LE + good + b"\x00\xd8" + "x\r\n".encode("utf-16-le")
    rejection = rejected(write(tmp_path, data))
    assert (rejection.code, rejection.offset, rejection.line) == ("ENCODING", 2 + len(good), 3)


def test_a_broken_utf16_stream_after_the_sniffed_part_is_rejected_while_reading(tmp_path):
    body = "".join(f"{n}\r\n" for n in range(200_000)).encode("utf-16-le")
    data = codecs.BOM_UTF16_LE + body + b"\x00\xdc" + "7\r\n".encode("utf-16-le")
    path = write(tmp_path, data)
    found = sniff(path)  # the broken pair is past the first MiB
    assert found.encoding == "utf-16"
    with pytest.raises(FileRejected) as caught:
        list(read_records(path, found))
    assert caught.value.code == "ENCODING"
    assert (caught.value.offset, caught.value.line) == (2 + len(body), 200_001)


def test_a_utf16_file_with_an_odd_number_of_bytes_is_rejected(tmp_path):
    path = write(tmp_path, codecs.BOM_UTF16_LE + "1\r\n2".encode("utf-16-le") + b"\x00")
    rejection = rejected(path)
    assert (rejection.code, rejection.offset) == ("ENCODING", 2 + 8)


def test_a_windows_1251_line_inside_a_utf8_file_is_a_row_issue_and_the_rest_is_read(tmp_path):
    data = (
        "1;Лояльные\n".encode()
        + "2;Новые клиенты\n".encode("cp1251")
        + "3;Новые\n".encode()
        + b"4;plain\n"
    )
    path = write(tmp_path, data)
    assert sniff(path).encoding == "utf-8"
    records = read(path)
    assert [(r.line, r.issue) for r in records] == [
        (1, None),
        (2, "encoding"),
        (3, None),
        (4, None),
    ]
    bad = records[1]
    assert bad.fields == []  # nothing from the damaged line can be stored
    assert bad.blank is False
    assert bad.text.startswith("2;\\xcd\\xee")  # shown with its bytes, never as mojibake
    assert records[2].fields == ["3", "Новые"]


def test_a_windows_1251_line_inside_a_quoted_multi_line_record_marks_that_record(tmp_path):
    data = b'1;"a\n' + "б\n".encode("cp1251") + b'c"\n2;ok\n'
    records = list(read_records(write(tmp_path, data), dialect()))
    assert [(r.line, r.issue, r.fields) for r in records] == [
        (1, "encoding", []),
        (4, None, ["2", "ok"]),
    ]


def test_windows_1251_chosen_for_a_utf8_file_is_rejected_instead_of_storing_mojibake(tmp_path):
    path = write(tmp_path, "1;Лояльные покупатели\n")
    rejection = rejected(path, encoding="cp1251")
    assert rejection.code == "ENCODING"
    assert "Windows-1251 was chosen" in rejection.message


def test_windows_1251_chosen_for_a_file_with_a_utf8_bom_is_rejected(tmp_path):
    path = write(tmp_path, codecs.BOM_UTF8 + b"1;abc\n")
    assert rejected(path, encoding="cp1251").code == "ENCODING"


def test_utf8_chosen_for_a_utf16_file_is_rejected(tmp_path):
    path = write(tmp_path, "1\r\n".encode("utf-16"))
    rejection = rejected(path, encoding="utf-8")
    assert rejection.code == "ENCODING"
    assert "UTF-16" in rejection.message


def test_utf8_chosen_for_a_windows_1251_file_reads_every_russian_line_as_a_row_issue(tmp_path):
    path = write(tmp_path, "1;abc\n2;Новые\n", encoding="cp1251")
    records = read(path, encoding="utf-8")
    assert [r.issue for r in records] == [None, "encoding"]


def test_unknown_encoding_or_delimiter_names_are_a_caller_error(tmp_path):
    path = write(tmp_path, "1\n")
    with pytest.raises(ValueError, match="encoding"):
        sniff(path, encoding="latin-1")
    with pytest.raises(ValueError, match="delimiter"):
        sniff(path, delimiter="|")


# --- binary files ----------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
MAGIC_FILES = {
    "PNG image": (PNG, "PNG image"),
    "JPEG image": (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "JPEG image"),
    "GIF image": (b"GIF89a\x01\x00\x01\x00", "GIF image"),
    "PDF": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "PDF document"),
    "XLSX header": (b"PK\x03\x04\x14\x00\x06\x00", "Excel .xlsx"),
    "XLS": (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100), "Excel .xls"),
    "gzip": (b"\x1f\x8b\x08\x00", "gzip"),
    "7z": (b"7z\xbc\xaf\x27\x1c\x00\x04", "7-Zip"),
    "RAR": (b"Rar!\x1a\x07\x01\x00", "RAR"),
    "ELF": (b"\x7fELF\x02\x01\x01", "program"),
    "SQLite": (b"SQLite format 3\x00", "SQLite"),
    "RTF": (b"{\\rtf1\\ansi 123\\par}", "RTF"),
    "WebP": (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "WebP"),
}


@pytest.mark.parametrize("name", MAGIC_FILES)
def test_a_binary_file_renamed_csv_is_rejected_naming_what_it_looks_like(tmp_path, name):
    data, kind = MAGIC_FILES[name]
    rejection = rejected(write(tmp_path, data + b"\n123;456\n"))
    assert (rejection.code, rejection.offset) == ("BINARY_FILE", 0)
    assert kind in rejection.message


@pytest.mark.parametrize("encoding", ["auto", "utf-8", "cp1251", "utf-16"])
def test_a_real_xlsx_workbook_is_rejected_with_advice_to_save_it_as_csv(tmp_path, encoding):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as workbook:
        workbook.writestr("[Content_Types].xml", "<Types/>")
        workbook.writestr("xl/workbook.xml", "<workbook/>")
    rejection = rejected(write(tmp_path, buffer.getvalue()), encoding=encoding)
    assert rejection.code == "BINARY_FILE"
    assert "ZIP archive or an Excel .xlsx workbook" in rejection.message
    assert "CSV UTF-8" in rejection.message


def test_random_bytes_are_rejected_as_binary(tmp_path):
    rejection = rejected(write(tmp_path, random.Random(1).randbytes(4096)))
    assert rejection.code == "BINARY_FILE"


def test_nul_bytes_in_a_text_file_are_rejected_with_their_line_and_offset(tmp_path):
    rejection = rejected(write(tmp_path, b"123\n456\n7\x008\n"))
    assert (rejection.code, rejection.line, rejection.offset) == ("BINARY_FILE", 3, 9)
    assert "NUL" in rejection.message


def test_nul_characters_in_a_utf16_file_are_rejected(tmp_path):
    rejection = rejected(write(tmp_path, "1\r\n2\x003\r\n".encode("utf-16")))
    assert (rejection.code, rejection.line) == ("BINARY_FILE", 2)


def test_a_file_of_many_control_characters_is_rejected_as_binary(tmp_path):
    rejection = rejected(write(tmp_path, b"\x01\x02\x03\x1b123\n" * 50))
    assert rejection.code == "BINARY_FILE"
    assert "control characters" in rejection.message


def test_a_few_control_characters_are_passed_to_the_pipeline_which_rejects_the_values(
    tmp_path,
):
    assert fields(write(tmp_path, "123\x07\n124\n125\n126\n")) == [
        ["123\x07"],
        ["124"],
        ["125"],
        ["126"],
    ]


def test_bidi_zero_width_and_control_characters_reach_the_pipeline_unchanged(tmp_path):
    value = "12\u202e34\u200b\x0b5\x1f"
    assert fields(write(tmp_path, f"{value};\u2066x\u2069\n1;2\n3;4\n")) == [
        [value, "\u2066x\u2069"],
        ["1", "2"],
        ["3", "4"],
    ]


# --- quotes ----------------------------------------------------------------------------------


def test_quoted_fields_keep_delimiters_and_doubled_quotes(tmp_path):
    path = write(tmp_path, '123;"Audience; with ""quotes"""\n124;"plain"\n')
    assert fields(path) == [["123", 'Audience; with "quotes"'], ["124", "plain"]]


def test_a_quote_in_the_middle_of_an_unquoted_field_is_a_literal_character(tmp_path):
    assert fields(write(tmp_path, '12"3;x"\n4;5\n')) == [['12"3', 'x"'], ["4", "5"]]


def test_text_after_a_closing_quote_is_kept_as_the_csv_module_does(tmp_path):
    assert fields(write(tmp_path, '"ab"c;d\n" x" ;y\n')) == [["abc", "d"], [" x ", "y"]]


def test_a_quoted_field_may_span_lines_and_line_numbers_follow_it(tmp_path):
    path = write(tmp_path, '1;"first\r\nsecond\r\n\r\nthird";x\r\n2;y\r\n"a\rb"\r\n3;z')
    records = read(path)
    assert [(r.line, r.fields) for r in records] == [
        (1, ["1", "first\nsecond\n\nthird", "x"]),
        (5, ["2", "y"]),
        (6, ["a\nb"]),
        (8, ["3", "z"]),
    ]
    assert records[0].text == '1;"first\nsecond\n\nthird";x'


def test_an_unterminated_quote_is_rejected_with_the_line_where_it_opened(tmp_path):
    rejection = rejected(write(tmp_path, '1;a\n2;"b\n3;c\n4;d\n'))
    assert (rejection.code, rejection.line) == ("UNTERMINATED_QUOTE", 2)
    assert "line 2" in rejection.message
    assert "end of the file" in rejection.message


def test_the_unterminated_quote_reported_is_the_one_still_open(tmp_path):
    path = write(tmp_path, '1;"a\nb";"c\n\nd\n')
    rejection = rejected(path)
    assert (rejection.code, rejection.line) == ("UNTERMINATED_QUOTE", 2)


def test_a_quote_open_for_more_than_100_lines_is_rejected_instead_of_swallowing_the_file(
    tmp_path,
):
    closed_in_time = '"' + "x\n" * 99 + 'y";1\n2\n'
    assert [r.line for r in read(write(tmp_path, closed_in_time))] == [1, 101]
    path = write(tmp_path, '0\n"' + "x\n" * 100 + 'y";1\n2\n')
    rejection = rejected(path)
    assert (rejection.code, rejection.line) == ("UNTERMINATED_QUOTE", 2)
    assert "100 lines" in rejection.message


def test_a_quote_open_for_more_than_the_line_limit_in_bytes_is_rejected(tmp_path):
    path = write(tmp_path, '1\n"' + ("x" * 60 + "\n") * 20 + '";2\n')
    assert len(read(path, max_line_bytes=2000)) == 2
    rejection = rejected(path, max_line_bytes=1000)
    assert (rejection.code, rejection.line) == ("UNTERMINATED_QUOTE", 2)
    assert "1,000 bytes" in rejection.message


def test_split_fields_reports_where_the_open_quote_is():
    assert split_fields('a;"b;c', ";") == (["a"], 2)
    assert split_fields('a;"b"";c', ";") == (["a"], 2)
    assert split_fields('a;"b""";c', ";") == (["a", 'b"', "c"], -1)
    assert split_fields("", ";") == ([""], -1)
    assert split_fields('x;"";', ";") == (["x", "", ""], -1)


# --- line length -----------------------------------------------------------------------------


@pytest.mark.parametrize("block_size", [7, 1000, csvread.BLOCK_SIZE])
def test_a_line_longer_than_the_limit_is_a_row_issue_and_the_next_lines_are_read(
    tmp_path, block_size
):
    long_line = "9" * 70_000
    path = write(tmp_path, f"1\n{long_line}\r\n2;b\n")
    with mock.patch.object(csvread, "BLOCK_SIZE", block_size):
        records = read(path)
    assert [(r.line, r.fields, r.issue) for r in records] == [
        (1, ["1"], None),
        (2, [], "line_too_long"),
        (3, ["2", "b"], None),
    ]
    assert records[1].text == "9" * 1000
    assert records[1].blank is False


def test_the_line_limit_counts_bytes_not_characters(tmp_path):
    path = write(tmp_path, "ж" * 50 + "\n" + "ж" * 51 + "\n" + "x" * 101 + "\n")
    issues = [r.issue for r in read(path, max_line_bytes=100)]
    assert issues == [None, "line_too_long", "line_too_long"]
    utf16 = write(tmp_path, ("ж" * 50 + "\r\n" + "ж" * 51 + "\r\n").encode("utf-16"))
    assert [r.issue for r in read(utf16, max_line_bytes=100)] == [None, "line_too_long"]


def test_a_line_with_an_unclosed_quote_over_the_limit_is_a_row_issue_not_a_quote_error(
    tmp_path,
):
    path = write(tmp_path, '1\n"' + "x" * 500 + "\n2\n")
    records = read(path, max_line_bytes=100)
    assert [(r.line, r.issue) for r in records] == [(1, None), (2, "line_too_long"), (3, None)]


def test_a_huge_line_without_any_newline_is_read_in_constant_memory(tmp_path):
    path = write(tmp_path, "1\n" + "x" * 8_000_000)
    tracemalloc.start()
    try:
        records = read(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [(r.line, r.issue) for r in records] == [(1, None), (2, "line_too_long")]
    assert peak < 4_000_000  # the 8 MB line was never held


def test_a_field_over_the_csv_modules_size_limit_is_read_when_the_line_limit_allows(
    tmp_path,
):
    big = "y" * 200_000  # csv.field_size_limit() is 131,072 by default
    path = write(tmp_path, f'1;"{big}"\n2;"z"\n')
    records = read(path, max_line_bytes=300_000)
    assert [r.fields for r in records] == [["1", big], ["2", "z"]]
    assert len(records[0].text) == 1000
    assert read(path)[0].issue == "line_too_long"


# --- line endings ----------------------------------------------------------------------------

LINES = ['123;"a\nb"', "", "124; Audience 2", "  ", '"x""y";z']


@pytest.mark.parametrize("block_size", [1, 2, 3, 5, csvread.BLOCK_SIZE])
@pytest.mark.parametrize("encoding", ["utf-8", "cp1251", "utf-16"])
def test_crlf_lf_cr_and_mixed_line_endings_give_identical_records(tmp_path, block_size, encoding):
    expected = None
    for name, endings in {
        "LF": ["\n"],
        "CRLF": ["\r\n"],
        "CR": ["\r"],
        "mixed": ["\r\n", "\n", "\r", "\n", "\r\n", "\r"],
    }.items():
        text = "".join(
            line.replace("\n", endings[i % len(endings)]) + endings[(i + 1) % len(endings)]
            for i, line in enumerate(LINES)
        )
        path = write(tmp_path, text, name=f"{name}.csv", encoding=encoding)
        with mock.patch.object(csvread, "BLOCK_SIZE", block_size):
            records = read(path, encoding=encoding.replace("utf-16", "auto"))
        if expected is None:
            expected = records
        assert records == expected, name
    assert [(r.line, r.fields) for r in expected] == [
        (1, ["123", "a\nb"]),
        (3, [""]),
        (4, ["124", " Audience 2"]),
        (5, ["  "]),
        (6, ['x"y', "z"]),
    ]


# --- delimiters ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1;a\n2;b\n", ";"),
        ("1,a\n2,b\n", ","),
        ("1\ta\n2\tb\n", "\t"),
        ('1;"x, y, z"\n2;"u, v"\n', ";"),  # commas inside quotes do not count
        ("1,a;b\n2,c;d\n", ";"),  # a tie goes to ; then , then TAB
        ("1,a\t\n2,b\t\n", ","),
        ("1,a\n2;b\n3,c\n", ","),  # present in most lines
        ("245.\n246.\n", ";"),  # no delimiter at all: one column
        ("user@example.com\n", ";"),
    ],
)
def test_the_delimiter_is_detected(tmp_path, text, expected):
    found = sniff(write(tmp_path, text))
    assert (found.delimiter, found.sep_line, found.detected) == (expected, False, True)


@pytest.mark.parametrize(
    ("name", "expected"),
    [(";", ";"), ("semicolon", ";"), (",", ","), ("Comma", ","), ("\t", "\t"), ("tab", "\t")],
)
def test_a_chosen_delimiter_is_used_as_given(tmp_path, name, expected):
    path = write(tmp_path, "1;a,b\tc\n")
    assert sniff(path, delimiter=name).delimiter == expected


def test_an_excel_sep_line_sets_the_delimiter_and_is_not_a_record(tmp_path):
    path = write(tmp_path, codecs.BOM_UTF8 + b"sep=,\r\n1;2,x\r\n3;4,y\r\n")
    found = sniff(path)
    assert (found.delimiter, found.sep_line) == (",", True)
    assert [(r.line, r.fields) for r in read(path)] == [(2, ["1;2", "x"]), (3, ["3;4", "y"])]


def test_a_tab_sep_line_is_understood(tmp_path):
    path = write(tmp_path, "sep=\t\n1\ta\n")
    assert sniff(path).delimiter == "\t"
    assert fields(path) == [["1", "a"]]


def test_a_sep_line_naming_an_unsupported_delimiter_is_rejected(tmp_path):
    rejection = rejected(write(tmp_path, "sep=|\n1|a\n"))
    assert (rejection.code, rejection.line) == ("DELIMITER", 1)


def test_without_sep_line_in_the_dialect_a_sep_line_is_an_ordinary_record(tmp_path):
    path = write(tmp_path, "sep=;\n1\n")
    assert [r.fields for r in read_records(path, dialect())] == [["sep=", ""], ["1"]]


# --- reading options -------------------------------------------------------------------------


def test_skip_until_line_parses_but_does_not_yield_earlier_records(tmp_path):
    path = write(tmp_path, '1\n"2\n2b"\n3\n"4\n4b"\n5\n')
    everything = read(path)
    assert [r.line for r in everything] == [1, 2, 4, 5, 7]
    for checkpoint in range(9):
        resumed = read(path, skip_until_line=checkpoint)
        assert resumed == [r for r in everything if r.line > checkpoint]


@pytest.mark.parametrize("block_size", [3, csvread.BLOCK_SIZE])
def test_skip_until_line_in_a_file_without_quotes(tmp_path, block_size):
    path = write(tmp_path, "".join(f"{n}\n" for n in range(1, 101)))
    with mock.patch.object(csvread, "BLOCK_SIZE", block_size):
        records = read(path, skip_until_line=57)
    assert [r.line for r in records] == list(range(58, 101))
    assert records[0].fields == ["58"]


def test_progress_reports_the_bytes_read_up_to_the_file_size(tmp_path):
    path = write(tmp_path, "".join(f"{n};x\n" for n in range(1000)))
    seen = []
    with mock.patch.object(csvread, "BLOCK_SIZE", 1024):
        read(path, progress=seen.append)
    assert seen == sorted(seen)
    assert len(seen) == -(-path.stat().st_size // 1024)
    assert seen[-1] == path.stat().st_size


def test_record_text_is_cut_to_1000_characters_but_fields_are_whole(tmp_path):
    value = "v" * 5000
    records = read(write(tmp_path, f'1;{value}\n2;"{value}"\n'))
    assert [len(r.text) for r in records] == [1000, 1000]
    assert [r.fields[1] for r in records] == [value, value]


def test_reading_a_200k_line_file_keeps_memory_small(tmp_path):
    path = write(tmp_path, "".join(f"{1_000_000 + n};Audience {n % 7}\n" for n in range(200_000)))
    found = sniff(path)
    tracemalloc.start()
    try:
        rows = 0
        for record in read_records(path, found):
            rows += len(record.fields) == 2
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows == 200_000
    assert peak < 6_000_000  # the file is 4 MB and its records ~60 MB as objects


# --- the public contract ---------------------------------------------------------------------


def test_records_are_immutable(tmp_path):
    record = read(write(tmp_path, "1\n"))[0]
    with pytest.raises(AttributeError):
        record.line = 2
    assert record._replace(line=2).line == 2


def test_a_rejection_is_a_dict_for_the_report_and_survives_pickling():
    rejection = FileRejected("BINARY_FILE", "The file is a PNG image.", line=None, offset=0)
    expected = {"code": "BINARY_FILE", "message": "The file is a PNG image.", "line": None}
    assert rejection.as_dict() == {**expected, "offset": 0}
    again = pickle.loads(pickle.dumps(rejection))
    assert again.as_dict() == rejection.as_dict()


def test_every_code_is_documented_in_one_line():
    assert set(ROW_ISSUE_CODES) == {"encoding", "line_too_long"}
    for code, text in {**FILE_REJECTION_CODES, **ROW_ISSUE_CODES}.items():
        assert text.endswith(".") and "\n" not in text, code
    assert all(code.isupper() for code in FILE_REJECTION_CODES)


def test_a_file_over_the_size_limit_is_rejected_before_reading(tmp_path):
    path = write(tmp_path, "1\n" * 100)
    rejection = rejected(path, max_bytes=199)
    assert rejection.code == "TOO_LARGE"
    assert "200 bytes" in rejection.message
    assert len(read(path, max_bytes=200)) == 100
