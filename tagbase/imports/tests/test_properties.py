"""Generated files through the real pipeline, checked against an oracle in plain Python.

For every generated file: no uncaught exception; the job ends in a terminal state; the
accounting identity holds; the counters equal the oracle's; the audience's members equal the
oracle's set; the rejected-rows report lists exactly the rejected lines with their codes.
The number of files per run is TAGBASE_PROPERTY_EXAMPLES (default 10,000; `make test` runs it).
"""

from __future__ import annotations

import csv
import itertools
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagbase.accounts.actors import Actor
from tagbase.audiences import services as audience_services
from tagbase.audiences.models import Membership
from tagbase.imports import queries
from tagbase.imports.tests.helpers import identity_holds, run_import
from tagbase.testing import make_customer

EXAMPLES = int(os.environ.get("TAGBASE_PROPERTY_EXAMPLES", "10000"))
KNOWN = list(range(100, 130))  # customers that exist
UNKNOWN = list(range(900, 915))  # well-formed ids of nobody
PRE_MEMBERS = KNOWN[:8]  # already in the audience before each import
_names = itertools.count()

# (text as written, reason code) — values the sc_id normaliser must refuse.
INVALID = [
    ("0012", "leading_zero"),
    ("1.23457E+15", "spreadsheet_exponent"),
    ("1 234 567", "spreadsheet_grouping"),
    ("12.0", "spreadsheet_decimal"),
    ("abc", "not_a_number"),
    ("١٢", "non_ascii_digit"),
    ("1\u200b2", "control_character"),
    ("-5", "out_of_range"),
    ("=1+1", "not_a_number"),
]

row = st.one_of(
    st.tuples(st.just("blank"), st.sampled_from(["", "   ", "\t", ";", " ; "])),
    st.tuples(st.just("known"), st.sampled_from(KNOWN)),
    st.tuples(st.just("unknown"), st.sampled_from(UNKNOWN)),
    st.tuples(st.just("invalid"), st.sampled_from(INVALID)),
)
decor = st.tuples(
    st.sampled_from(["", " ", "\u00a0", "\t"]),  # padding before
    st.sampled_from(["", ";", "."]),  # terminator
)
file_spec = st.tuples(
    st.lists(st.tuples(row, decor), min_size=1, max_size=25),
    st.sampled_from(["\n", "\r\n", "\r"]),
    st.booleans(),  # final newline
)


def render(spec) -> tuple[str, list[tuple[int, str, object]]]:  # type: ignore[no-untyped-def]
    """The file text and, per line, (line, kind, payload) as the generator meant it."""
    rows, eol, final = spec
    lines, meaning = [], []
    for number, ((kind, payload), (pad, term)) in enumerate(rows, start=1):
        if kind == "blank":
            lines.append(payload)
        elif kind == "invalid":
            lines.append(f"{pad}{payload[0]}{term}")
        else:
            lines.append(f"{pad}{payload}{term}")
        meaning.append((number, kind, payload))
    # A last line that is empty exists only if a line ending follows it.
    final = final or lines[-1] == ""
    return eol.join(lines) + (eol if final else ""), meaning


def oracle(meaning):  # type: ignore[no-untyped-def]
    counts = dict.fromkeys(
        ["blank", "invalid", "duplicate_in_file", "not_found", "already_member", "added"], 0
    )
    rejected, seen, members = [], set(), set(PRE_MEMBERS)
    for line, kind, payload in meaning:
        if kind == "blank":
            counts["blank"] += 1
        elif kind == "invalid":
            counts["invalid"] += 1
            rejected.append((line, payload[1]))
        elif payload in seen:
            counts["duplicate_in_file"] += 1
            rejected.append((line, "duplicate_in_file"))
        else:
            seen.add(payload)
            if kind == "unknown":
                counts["not_found"] += 1
                rejected.append((line, "not_found"))
            elif payload in members:
                counts["already_member"] += 1
            else:
                counts["added"] += 1
                members.add(payload)
    return counts, rejected, members


@pytest.mark.django_db
@pytest.mark.timeout(1800)  # 10,000 files: about 3 minutes per engine here
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=False,
)
@given(spec=file_spec)
def test_generated_files_match_the_oracle(spec, _customers):
    text, meaning = render(spec)
    counts, rejected, expected_members = oracle(meaning)
    audience = audience_services.create_audience(f"P{next(_names)}", actor=Actor.system("t"))
    audience_services.add_customers_to_audience(
        audience, PRE_MEMBERS, actor=Actor.system("t"), kind="ui"
    )
    data_rows = len(meaning) - counts["blank"]
    job = run_import(text, mode="single", audience_id=audience.pk, id_type="sc_id")
    if data_rows == 0:
        assert (job.status, job.error_code) in {
            ("rejected", "EMPTY_FILE"),
            ("rejected", "NO_DATA_ROWS"),
        }
        return
    assert job.is_terminal and job.is_successful, (job.status, job.error_message)
    assert identity_holds(job)
    got = {k: getattr(job, k) for k in counts}
    assert got == counts, text
    assert job.rows_read == len(meaning)
    actual = set(Membership.objects.filter(audience=audience).values_list("customer_id", flat=True))
    assert actual == expected_members
    path = queries.rejects_path(job)
    with path.open(encoding="utf-8", newline="") as fh:
        report = [(int(r[0]), r[2]) for r in list(csv.reader(fh))[1:]]
    assert report == rejected, text


@pytest.fixture
def _customers(db):  # type: ignore[no-untyped-def]
    for sc_id in KNOWN:
        make_customer(sc_id=sc_id)
