"""Properties of the CSV reader over generated files: whatever csv.writer writes comes back
field for field on the right lines, block boundaries never change the result, and no input
makes the reader raise anything but FileRejected."""

import csv
import io
import os
import tempfile
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagbase.lib import csvread
from tagbase.lib.csvread import BLANK_CHARS, Dialect, FileRejected, read_records, sniff

EXAMPLES = settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

# Characters that matter to a CSV reader, mixed with any other character (lone surrogates
# only where a test writes them on purpose, as undecodable bytes).
SPECIAL = st.sampled_from(['"', ";", ",", "\t", "\r", "\n", " ", "\ufeff", "\xa0", "x", "1"])
CHARACTER = st.one_of(SPECIAL, st.characters(codec="utf-8"))
FIELD = st.text(alphabet=CHARACTER, max_size=10)
ROWS = st.lists(st.lists(FIELD, min_size=1, max_size=5), min_size=1, max_size=12)
ENDING = st.sampled_from(["\r\n", "\n", "\r"])
BLOCK_SIZES = st.sampled_from([1, 2, 3, 4, 7, 64, csvread.BLOCK_SIZE])
LABELS = {"utf-8": "UTF-8", "utf-8-sig": "UTF-8 with BOM", "utf-16": "UTF-16"}


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as directory:
        yield os.path.join(directory, "generated.csv")


def universal(text):
    return text.replace("\r\n", "\n").replace("\r", "\n")


def write_rows(rows, delimiter, endings, final_newline):
    """The text csv.writer (QUOTE_MINIMAL) writes for ``rows``, with the given line endings.

    Each row is written with "\\r\\n" and cut off: csv.writer only quotes a field containing
    CR or LF when that character is part of its line terminator."""
    lines = []
    for row in rows:
        buffer = io.StringIO()
        csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n").writerow(row)
        lines.append(buffer.getvalue()[:-2])
    text = ""
    for index, line in enumerate(lines):
        text += line
        if index < len(lines) - 1 or final_newline:
            text += endings[index % len(endings)]
    return text


@EXAMPLES
@given(
    rows=ROWS,
    delimiter=st.sampled_from([";", ",", "\t"]),
    endings=st.lists(ENDING, min_size=1, max_size=3),
    final_newline=st.booleans(),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
    block_size=BLOCK_SIZES,
)
def test_what_csv_writer_writes_is_read_back_field_for_field_on_the_right_lines(
    scratch, rows, delimiter, endings, final_newline, encoding, block_size
):
    text = write_rows(rows, delimiter, endings, final_newline)
    with open(scratch, "wb") as file:
        file.write(text.encode(encoding))
    dialect = Dialect(encoding, LABELS[encoding], delimiter, False, False)
    with mock.patch.object(csvread, "BLOCK_SIZE", block_size):
        records = list(read_records(scratch, dialect))

    expected = [[universal(field) for field in row] for row in rows]
    if encoding == "utf-8" and text.startswith("\ufeff"):
        expected[0][0] = expected[0][0][1:]  # these bytes are the UTF-8 BOM: never data
    lines, line = [], 1
    for row in expected:
        lines.append(line)
        line += 1 + sum(field.count("\n") for field in row)
    assert [record.fields for record in records] == expected
    assert [record.line for record in records] == lines
    assert [record.issue for record in records] == [None] * len(rows)
    blanks = [not any(field.strip(BLANK_CHARS) for field in row) for row in expected]
    assert [record.blank for record in records] == blanks


LINE_TEXT = st.text(alphabet=CHARACTER, max_size=40)
ANY_LINE_TEXT = st.text(alphabet=st.one_of(SPECIAL, st.characters()), max_size=40)


@EXAMPLES
@given(
    lines=st.lists(ANY_LINE_TEXT, min_size=1, max_size=20),
    endings=st.lists(ENDING, min_size=1, max_size=3),
    encoding=st.sampled_from(["utf-8", "utf-16"]),
    block_size=BLOCK_SIZES,
    max_line_bytes=st.sampled_from([8, 30, 65536]),
)
def test_block_boundaries_never_change_the_records_or_the_rejection(
    scratch, lines, endings, encoding, block_size, max_line_bytes
):
    text = "".join(line + endings[i % len(endings)] for i, line in enumerate(lines))
    with open(scratch, "wb") as file:
        file.write(text.encode(encoding, "surrogatepass"))
    dialect = Dialect(encoding, LABELS[encoding], ";", False, False)

    def outcome():
        try:
            records = list(read_records(scratch, dialect, max_line_bytes=max_line_bytes))
        except FileRejected as rejection:
            return rejection.as_dict()
        return records

    reference = outcome()
    with mock.patch.object(csvread, "BLOCK_SIZE", block_size):
        assert outcome() == reference
    if isinstance(reference, list):
        # Every record's line is where it starts: lines are never lost or counted twice.
        assert [record.line for record in reference] == sorted({r.line for r in reference})
        assert all(len(record.text) <= csvread.TEXT_LIMIT for record in reference)


@EXAMPLES
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.lists(LINE_TEXT, max_size=10).map(lambda lines: "\n".join(lines).encode()),
        st.lists(LINE_TEXT, max_size=10).map(
            lambda lines: "\r\n".join(lines).encode("cp1251", "replace")
        ),
        st.lists(LINE_TEXT, max_size=10).map(lambda lines: "\r".join(lines).encode("utf-16")),
    ),
    encoding=st.sampled_from(["auto", "utf-8", "cp1251", "utf-16"]),
    delimiter=st.sampled_from(["auto", ";"]),
    block_size=BLOCK_SIZES,
)
def test_no_input_raises_anything_but_file_rejected(scratch, data, encoding, delimiter, block_size):
    with open(scratch, "wb") as file:
        file.write(data)
    try:
        found = sniff(scratch, encoding=encoding, delimiter=delimiter)
        with mock.patch.object(csvread, "BLOCK_SIZE", block_size):
            records = list(read_records(scratch, found, max_line_bytes=64))
    except FileRejected as rejection:
        assert rejection.code in csvread.FILE_REJECTION_CODES
        return
    for record in records:
        assert record.issue in (None, *csvread.ROW_ISSUE_CODES)
        assert record.line >= 1
        assert isinstance(record.text, str)
        assert all(isinstance(field, str) for field in record.fields)


@EXAMPLES
@given(line=LINE_TEXT.map(universal).map(lambda text: text.replace("\n", " ")))
def test_the_python_parser_agrees_with_the_csv_module_on_every_closed_line(line):
    fields, open_at = csvread.split_fields(line, ";")
    if open_at < 0:
        assert fields == (next(csv.reader([line], delimiter=";"), None) or [""])


@EXAMPLES
@given(
    rows=st.lists(
        st.lists(st.text(alphabet=st.characters(codec="cp1251"), max_size=8), min_size=1),
        min_size=1,
        max_size=8,
    ),
    ending=ENDING,
)
def test_windows_1251_files_are_read_back_exactly(scratch, rows, ending):
    text = write_rows(rows, ";", [ending], True)
    with open(scratch, "wb") as file:
        file.write(text.encode("cp1251"))
    dialect = Dialect("cp1251", "Windows-1251", ";", False, False)
    expected = [[universal(field) for field in row] for row in rows]
    assert [record.fields for record in read_records(scratch, dialect)] == expected
