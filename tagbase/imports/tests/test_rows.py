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
