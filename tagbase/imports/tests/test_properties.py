"""Generated files through the real pipeline, checked against an oracle in plain Python.

Two shapes of file: mode single (one column of identifiers, with the documented terminators),
and mode per_row with a third column saying what each row does (``+`` / ``-`` in their
documented spellings, empty, missing, or not an action) into three audiences — one with
members, one empty, one that does not exist — named in several spellings, under an import
action of add or remove.

For every generated file: no uncaught exception; the job ends in a terminal state; the
accounting identity holds; the counters equal the oracle's; every audience's members equal the
oracle's set (and only the audiences the oracle creates exist); the rejected-rows report lists
exactly the rejected lines with their codes. The number of files per run is
TAGBASE_PROPERTY_EXAMPLES (default 10,000; `make test` runs it), shared by the two shapes.
"""

from __future__ import annotations

import csv
import itertools
import os
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tagbase.accounts.actors import Actor
from tagbase.audiences import services as audience_services
from tagbase.audiences.models import Audience, Membership
from tagbase.imports import queries
from tagbase.imports.models import ImportJob
from tagbase.imports.tests.helpers import identity_holds, run_import
from tagbase.lib.names import audience_name_key
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


# --- Per-row files with a third column (+ / -) ----------------------------------------------
# Three audiences per file: "a" has PRE_MEMBERS, "b" exists and is empty, "c" does not exist.
# Each is written in one of three spellings that are the same audience.
SPELLINGS = ["{}", "{} ", " {}"]
AUD_BASE = {"a": "Aa{}", "b": "Bb{}", "c": "Cc{}"}
CASES = [str.upper, str.lower, lambda name: name]
# The third column as written -> the action it means; None: no such column; "bad": not one.
SIGN_CELLS = {
    None: None,
    "": None,
    " ": None,
    "+": "+",
    "-": "-",
    "add": "+",
    "Remove": "-",
    " - ": "-",
    "\uff0b": "+",
    "x": "bad",
    "+-": "bad",
}
# Few identifiers, half of them members of "a", so that files often repeat a customer in an
# audience — with the same action (a duplicate) or the other one (a conflict).
id_cell = st.one_of(
    st.tuples(st.just("known"), st.sampled_from(KNOWN[4:10])),
    st.tuples(st.just("known"), st.sampled_from(KNOWN[4:10])),
    st.tuples(st.just("unknown"), st.sampled_from(UNKNOWN[:3])),
    st.tuples(st.just("invalid"), st.sampled_from(INVALID)),
)
data_line = st.tuples(
    st.just("row"),
    st.tuples(
        id_cell,
        st.sampled_from(["a", "a", "b", "c"]),  # "a" (with members) twice as often
        st.tuples(st.sampled_from(range(len(SPELLINGS))), st.sampled_from(range(len(CASES)))),
        st.sampled_from(list(SIGN_CELLS)),
        st.sampled_from(["", " ", "\u00a0"]),  # padding before the identifier
    ),
)
# A line that names the customer and audience of an earlier data line again (the k-th before
# it, counting round), in its own spelling and with its own action: a repeat or a conflict.
again_line = st.tuples(
    st.just("again"),
    st.tuples(
        st.integers(min_value=1, max_value=3),
        st.tuples(st.sampled_from(range(len(SPELLINGS))), st.sampled_from(range(len(CASES)))),
        st.sampled_from(list(SIGN_CELLS)),
        st.sampled_from(["", " ", "\u00a0"]),
    ),
)
blank_line = st.tuples(st.just("blank"), st.sampled_from(["", "   ", "{d}", " {d} "]))
per_row_line = st.one_of(blank_line, data_line, data_line, again_line)
per_row_spec = st.tuples(
    st.lists(per_row_line, min_size=1, max_size=20),
    st.sampled_from([";", ",", "\t"]),
    st.sampled_from(["\n", "\r\n"]),
    st.sampled_from(["add", "remove"]),  # the import's action: rows without a sign do it
)


def render_per_row(spec, n: int):  # type: ignore[no-untyped-def]
    """The file text, and per line (line, kind, payload) with the audience as "a"/"b"/"c", the
    name as the file spells it and the action the row asks for ("+", "-", or "bad")."""
    lines, meaning, default = [], [], "+" if spec[3] == "add" else "-"
    rows, d, eol = spec[0], spec[1], spec[2]
    earlier: list[tuple[object, str]] = []  # (identifier cell, audience) of the data lines so far
    for number, (kind, payload) in enumerate(rows, start=1):
        if kind == "again" and earlier:
            back, spelling_case, cell, pad = payload
            id_and_aud = earlier[-1 - (back - 1) % len(earlier)]
            kind, payload = "row", (*id_and_aud, spelling_case, cell, pad)
        if kind != "row":  # blank, or "again" with nothing before it
            lines.append(payload.format(d=d) if kind == "blank" else "")
            meaning.append((number, "blank", None))
            continue
        (id_kind, ident), aud, (spelling, case), cell, pad = payload
        earlier.append(((id_kind, ident), aud))
        name = SPELLINGS[spelling].format(CASES[case](AUD_BASE[aud].format(n)))
        written = ident[0] if id_kind == "invalid" else ident
        cells = [f"{pad}{written}", name] + ([] if cell is None else [cell])
        lines.append(d.join(cells))
        action = SIGN_CELLS[cell] or default
        meaning.append((number, id_kind, (ident, aud, name.strip(), action)))
    return eol.join(lines) + eol, meaning


PER_ROW_COUNTERS = [
    "blank",
    "invalid",
    "duplicate_in_file",
    "not_found",
    "already_member",
    "added",
    "not_member",
    "removed",
]


def oracle_per_row(meaning):  # type: ignore[no-untyped-def]
    """What docs/imports.md says a per-row file with a third column does, in plain Python."""
    counts = dict.fromkeys(PER_ROW_COUNTERS, 0)
    outcome: dict[int, str] = {}  # line -> reason code of a rejected row
    candidates = []
    first_spelling: dict[str, str] = {}
    for line, kind, payload in meaning:
        if kind == "blank":
            counts["blank"] += 1
            continue
        ident, aud, name, action = payload
        if kind == "invalid":
            outcome[line] = ident[1]  # the identifier is checked first
        elif action == "bad":
            outcome[line] = "action_invalid"
        else:
            first_spelling.setdefault(aud, name)
            candidates.append((line, kind, ident, aud, action))
    actions: dict[tuple[str, int], set[str]] = {}
    for _, kind, ident, aud, action in candidates:
        if kind == "known":
            actions.setdefault((aud, ident), set()).add(action)
    seen: set[tuple[str, int]] = set()
    applied = []
    for line, kind, ident, aud, action in candidates:
        if kind == "known" and len(actions[(aud, ident)]) > 1:
            outcome[line] = "conflicting_action"
        elif (aud, ident) in seen:
            outcome[line] = "duplicate_in_file"
        else:
            seen.add((aud, ident))
            if kind == "unknown":
                outcome[line] = "not_found"
            else:
                applied.append((aud, ident, action))
    for code in outcome.values():
        key = code if code in {"duplicate_in_file", "not_found"} else "invalid"
        counts[key] += 1
    members = {"a": set(PRE_MEMBERS), "b": set(), "c": set()}
    existed = {"a", "b"}  # "-" rows never create an audience, even one "+" rows create
    for aud, ident, action in applied:
        if action == "+":
            counts["already_member" if ident in members[aud] else "added"] += 1
            members[aud].add(ident)
        elif aud in existed and ident in members[aud]:
            counts["removed"] += 1
            members[aud].discard(ident)
        else:
            counts["not_member"] += 1
    created = [first_spelling["c"]] if any(a == "c" and x == "+" for a, _, x in applied) else []
    return counts, sorted(outcome.items()), members, created


# --- The test ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.timeout(1800)  # 10,000 files: about 3 minutes per engine here
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=False,
)
@given(
    spec=st.one_of(
        st.tuples(st.just("single"), file_spec), st.tuples(st.just("per_row"), per_row_spec)
    )
)
def test_generated_files_match_the_oracle(spec, _customers):
    shape, spec = spec
    if shape == "single":
        check_single(spec)
    else:
        check_per_row(spec)


def check_single(spec) -> None:  # type: ignore[no-untyped-def]
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
    assert rejected_lines(job) == rejected, text


def check_per_row(spec) -> None:  # type: ignore[no-untyped-def]
    n = next(_names)
    text, meaning = render_per_row(spec, n)
    counts, rejected, expected_members, created = oracle_per_row(meaning)
    made = {
        "a": audience_services.create_audience(AUD_BASE["a"].format(n), actor=Actor.system("t")),
        "b": audience_services.create_audience(AUD_BASE["b"].format(n), actor=Actor.system("t")),
    }
    audience_services.add_customers_to_audience(
        made["a"], PRE_MEMBERS, actor=Actor.system("t"), kind="ui"
    )
    job = run_import(text, mode="per_row", action=spec[3], id_type="sc_id")
    if len(meaning) == counts["blank"]:
        assert (job.status, job.error_code) in {
            ("rejected", "EMPTY_FILE"),
            ("rejected", "NO_DATA_ROWS"),
        }
        return
    assert job.is_terminal and job.is_successful, (job.status, job.error_message, text)
    assert identity_holds(job)
    assert {k: getattr(job, k) for k in counts} == counts, text
    assert (job.rows_read, job.ambiguous) == (len(meaning), 0)
    c_key = audience_name_key(AUD_BASE["c"].format(n))
    c = Audience.objects.filter(name_key=c_key).first()
    assert (c is not None) == bool(created), text
    assert job.audiences_created == [unicodedata.normalize("NFC", name) for name in created]
    for aud, audience in [*made.items(), ("c", c)]:
        actual = set()
        if audience is not None:
            actual = set(
                Membership.objects.filter(audience=audience).values_list("customer_id", flat=True)
            )
        assert actual == expected_members[aud], (aud, text)
    assert rejected_lines(job) == rejected, text


def rejected_lines(job: ImportJob) -> list[tuple[int, str]]:
    path = queries.rejects_path(job)
    assert path is not None
    with path.open(encoding="utf-8", newline="") as fh:
        return [(int(r[0]), r[2]) for r in list(csv.reader(fh))[1:]]


@pytest.fixture
def _customers(db):  # type: ignore[no-untyped-def]
    for sc_id in KNOWN:
        make_customer(sc_id=sc_id)
