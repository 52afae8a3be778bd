"""Row rules: the fast path agrees with the full normaliser wherever it answers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tagbase.imports import rows

ID_TYPES = ["sc_id", "external_id", "card"]
cell = st.one_of(
    st.from_regex(r"[0-9]{1,20}[.;]?", fullmatch=True),
    st.from_regex(r"[0-9A-Za-z_\-/:#@. ]{0,30}", fullmatch=True),
    st.text(max_size=12),
)


@settings(max_examples=3000, deadline=None)
@given(id_type=st.sampled_from(ID_TYPES), fields=st.lists(cell, min_size=1, max_size=3))
def test_the_fast_path_gives_what_the_full_path_gives(id_type, fields):
    fast = rows.fast_single(id_type)
    assert fast is not None
    value = fast(fields)
    if value is None:
        return
    full = rows.parse_single(fields, id_type, "RU")
    assert (full.kind, full.value) == ("candidate", value)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [(["123", ""], "123"), (["245."], "245"), (["0012"], None), (["12", "x"], None)],
)
def test_the_documented_terminators_take_the_fast_path(fields, expected):
    assert rows.fast_single("sc_id")(fields) == expected  # type: ignore[misc]


def test_phones_and_emails_always_take_the_full_path():
    assert rows.fast_single("phone") is None
    assert rows.fast_single("email") is None


# --- Per-row: the third column ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "sign"),
    [
        ("+", "+"),
        (" + ", "+"),
        ("add", "+"),
        ("ADD", "+"),
        ("\uff0b", "+"),  # full-width plus
        ("-", "-"),
        ("remove", "-"),
        ("Remove", "-"),
        ("\u2212", "-"),  # minus sign
        ("\uff0d", "-"),  # full-width hyphen-minus
        ("x", None),
        ("++", None),
        ("plus", None),
        ("", None),
        ("'+", None),
        ("\u2013", None),  # an en dash is not a minus
    ],
)
def test_the_action_column_accepts_the_documented_spellings_only(cell, sign):
    assert rows.sign_of(cell) == sign


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (["1", "VIP"], ("candidate", None, "")),
        (["1", "VIP", ""], ("candidate", None, "")),
        (["1", "VIP", " "], ("candidate", None, "")),
        (["1", "VIP", "+"], ("candidate", "+", "")),
        (["1", "VIP", "-", ""], ("candidate", "-", "")),
        (["1", "VIP", "?"], ("invalid", None, "action_invalid")),
        (["1", "VIP", "+", "x"], ("invalid", None, "extra_columns")),
        (["1", "", "+"], ("invalid", None, "audience_name_empty")),
        (["x", "VIP", "?"], ("invalid", None, "not_a_number")),
    ],
)
def test_per_row_reads_an_optional_action_after_the_audience(fields, expected):
    parsed = rows.parse_per_row(fields, "sc_id", "RU")
    assert (parsed.kind, parsed.sign, parsed.reason) == expected
    if parsed.kind == "candidate":
        assert (parsed.value, parsed.target_key) == ("1", "vip")


@pytest.mark.parametrize(
    ("fields", "column"), [(["1", "-"], 2), (["1", "VIP", "+"], 3), (["1", "add", ""], 2)]
)
def test_mode_single_recognises_an_action_column_to_refuse_the_file(fields, column):
    parsed = rows.parse_single(fields, "sc_id", "RU")
    assert (parsed.kind, parsed.column) == ("single_mode_sign", column)


def test_mode_single_keeps_its_other_readings():
    assert rows.parse_single(["1", ""], "sc_id", "RU").value == "1"
    assert rows.parse_single(["-"], "sc_id", "RU").kind == "invalid"  # an id, not an action
    assert rows.parse_single(["1", "VIP"], "sc_id", "RU").reason == "extra_columns"


def test_a_header_may_name_the_action_column():
    assert rows.looks_like_header(["id", "audience", "action"])
    assert rows.looks_like_header(["Телефон", "Аудитория", "Действие"])
    assert not rows.looks_like_header(["1", "VIP", "+"])
