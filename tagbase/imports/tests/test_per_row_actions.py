"""Per-row add/remove files: a third column (``+`` / ``-``) says whether a row adds its customer
to its audience or removes them (docs/imports.md, "Adding and removing in one file").

Reading (every delimiter the importer detects, quotes, byte-order marks, blank lines, headers),
the split report (preview and applied, per audience and per reason), conflicts inside the file,
remove rows naming a missing audience, mode single refusing the column, undo and resumption.
"""

from __future__ import annotations

import codecs
import csv

import pytest
from django.core.management import call_command
from django.db import DatabaseError

from tagbase.accounts.actors import Actor
from tagbase.audiences import services as audience_services
from tagbase.audiences.models import Audience, Membership, Operation
from tagbase.customers.models import Card
from tagbase.imports import pipeline, queries, services
from tagbase.imports.models import ImportJob, ImportTarget
from tagbase.imports.tests.helpers import identity_holds, run_import
from tagbase.lib.csvread import ENCODING_LABELS
from tagbase.testing import make_customer, membership_count_drift

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


def customers(*sc_ids: int) -> None:
    for sc_id in sc_ids:
        make_customer(sc_id=sc_id)


def audience(name: str, *member_ids: int) -> Audience:
    made = audience_services.create_audience(name, actor=ACTOR)
    if member_ids:
        audience_services.add_customers_to_audience(made, member_ids, actor=ACTOR, kind="ui")
    return made


def members(name: str) -> set[int]:
    aud = Audience.objects.filter(name=name).first()
    if aud is None:
        return set()
    return set(Membership.objects.filter(audience=aud).values_list("customer_id", flat=True))


def per_row(data: bytes | str, **request: object) -> ImportJob:
    request.setdefault("id_type", "sc_id")
    return run_import(data, mode="per_row", **request)


def counts(job: ImportJob) -> tuple[int, int, int, int]:
    return (job.added, job.already_member, job.removed, job.not_member)


def rejects(job: ImportJob) -> list[list[str]]:
    path = queries.rejects_path(job)
    assert path is not None
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.reader(fh))[1:]


def by_name(job: ImportJob) -> dict[str, dict[str, object]]:
    return {item["name"]: item for item in queries.job_report(job)["audiences"]}


# --- Reading the third column -----------------------------------------------------------------

MIXED = ["1;VIP;+", "2;VIP;-", "3;VIP;", "4;VIP"]


@pytest.mark.parametrize(
    ("delimiter", "prefix"),
    [(";", ""), (",", ""), ("\t", ""), (",", "sep=,\n"), (";", "sep=;\n")],
    ids=["semicolon", "comma", "tab", "sep-comma", "sep-semicolon"],
)
def test_every_delimiter_the_importer_detects_reads_the_third_column(delimiter, prefix):
    customers(1, 2, 3, 4)
    audience("VIP", 2)
    text = prefix + "\n".join(line.replace(";", delimiter) for line in MIXED) + "\n"
    job = per_row(text)
    assert job.status == "succeeded", job.error_message
    assert counts(job) == (3, 0, 1, 0)  # "3;VIP;" and "4;VIP" take the import's action: add
    assert members("VIP") == {1, 3, 4}
    assert identity_holds(job)


RU = "Постоянные покупатели магазина"
MIXED_RU = [line.replace("VIP", RU) for line in MIXED]


@pytest.mark.parametrize(
    ("encoded", "encoding"),
    [
        (("\ufeff" + "\r\n".join(MIXED_RU)).encode("utf-8"), "utf-8-sig"),
        (codecs.BOM_UTF16_LE + "\r\n".join(MIXED_RU).encode("utf-16-le"), "utf-16"),
        ("\n".join(MIXED_RU).encode("cp1251"), "cp1251"),
    ],
    ids=["utf-8-bom", "utf-16-bom", "cp1251"],
)
def test_byte_order_marks_and_encodings_do_not_touch_the_column(encoded, encoding):
    customers(1, 2, 3, 4)
    audience(RU, 2)
    job = per_row(encoded)
    assert job.status == "succeeded", job.error_message
    assert job.encoding == ENCODING_LABELS[encoding]
    assert counts(job) == (3, 0, 1, 0)
    assert members(RU) == {1, 3, 4}


def test_quoted_fields_blank_lines_header_and_the_spellings_of_the_sign():
    customers(1, 2, 3, 4, 5, 6, 7)
    audience("Gold; Silver", 2, 4, 6)
    text = (
        "id;audience;action\n"
        '1;"Gold; Silver";"+"\n'
        "\n"
        '2;"Gold; Silver";" - "\n'
        "   \n"
        "3;gold;  silver;ADD\n"  # not quoted: 4 columns
        '3;"GOLD;  SILVER";Add\n'
        '4;"Gold; Silver";remove\n'
        '5;"Gold; Silver";\uff0b\n'  # full-width plus
        '6;"Gold; Silver";\u2212\n'  # minus sign
        '7;"Gold; Silver"\n'
    )
    job = per_row(text, action="remove")
    assert job.has_header and job.status == "succeeded_with_rejections"
    assert (job.rows_read, job.blank, job.invalid) == (10, 2, 1)
    assert job.invalid_by_reason == {"extra_columns": 1}
    assert counts(job) == (3, 0, 3, 1)  # 7 has no sign: the import's action, remove
    assert members("Gold; Silver") == {1, 3, 5}
    assert identity_holds(job)


def test_a_value_that_is_no_action_rejects_the_row_and_names_its_reason():
    customers(1, 2)
    job = per_row("1;VIP;+\n2;VIP;x\n1;Other;plus\n2;VIP;+;more\n")
    assert job.invalid_by_reason == {"action_invalid": 2, "extra_columns": 1}
    assert [r[:3] for r in rejects(job)] == [
        ["2", "2;VIP;x", "action_invalid"],
        ["3", "1;Other;plus", "action_invalid"],
        ["4", "2;VIP;+;more", "extra_columns"],
    ]
    assert members("VIP") == {1} and not Audience.objects.filter(name="Other").exists()


def test_the_identifier_then_the_name_are_checked_before_the_action():
    customers(1)
    job = per_row("abc;VIP;x\n1;;-\n1;VIP;?\n")
    assert job.invalid_by_reason == {
        "not_a_number": 1,
        "audience_name_empty": 1,
        "action_invalid": 1,
    }


# --- The split report -------------------------------------------------------------------------


def test_a_mixed_file_is_previewed_then_applied_with_the_same_split_per_audience():
    customers(1, 2, 3, 4, 5, 6)
    audience("VIP", 1, 2)
    audience("Lapsed", 5)
    text = (
        "1;VIP;+\n"  # already a member
        "3;VIP;+\n"  # added
        "2;VIP;-\n"  # removed
        "4;VIP;-\n"  # not a member
        "5;Lapsed;-\n"  # removed
        "6;Brand new;+\n"  # added, audience created
        "6;Ghost;-\n"  # not a member: the audience does not exist
        "999;VIP;-\n"  # not found
        "\n"
    )
    preview = per_row(text, dry_run=True)
    assert preview.status == "previewed"
    assert counts(preview) == (2, 1, 2, 2)
    assert (preview.not_found, preview.blank) == (1, 1)
    assert preview.audiences_created == ["Brand new"]
    expected = {
        "Brand new": (None, False, 0, 1, 0, 0),
        "Ghost": (None, False, 0, 0, 0, 1),
        "Lapsed": (True, False, 0, 0, 1, 0),
        "VIP": (True, False, 1, 1, 1, 1),
    }

    def split(job: ImportJob) -> dict[str, tuple[object, ...]]:
        return {
            name: (
                item["audience_id"] and True,
                item["created"],
                item["already_member"],
                item["added"],
                item["removed"],
                item["not_member"],
            )
            for name, item in by_name(job).items()
        }

    assert split(preview) == expected
    assert members("VIP") == {1, 2} and members("Lapsed") == {5}  # nothing applied yet

    services.commit_import(preview, actor=ACTOR, enqueue=False)
    done = pipeline.run_import_job(preview.pk, owner="test")
    assert done is not None and done.status == "succeeded_with_rejections"
    assert counts(done) == counts(preview)
    assert identity_holds(done)
    expected["Brand new"] = (True, True, 0, 1, 0, 0)
    assert split(done) == expected
    assert done.audiences_created == ["Brand new"]
    assert members("VIP") == {1, 3} and members("Lapsed") == set()
    assert members("Brand new") == {6} and not Audience.objects.filter(name="Ghost").exists()
    # One operation per audience and action: VIP +, VIP -, Lapsed -, Brand new +.
    ops = Operation.objects.filter(source_ref=f"import:{done.pk}")
    assert sorted((op.audience_name, op.action) for op in ops) == [
        ("Brand new", "add"),
        ("Lapsed", "remove"),
        ("VIP", "add"),
        ("VIP", "remove"),
    ]
    assert sorted(queries.job_report(done)["operations"]) == sorted(op.pk for op in ops)
    assert by_name(done)["VIP"]["operations"] == sorted(
        op.pk for op in ops if op.audience_name == "VIP"
    )
    assert membership_count_drift() == []


def test_remove_rows_never_create_the_audience_even_when_add_rows_of_the_file_do():
    customers(1, 2)
    job = per_row("1;Fresh;+\n2;Fresh;-\n")
    assert counts(job) == (1, 0, 0, 1)
    assert members("Fresh") == {1}
    item = by_name(job)["Fresh"]
    assert (item["created"], item["added"], item["not_member"]) == (True, 1, 1)
    assert len(item["operations"]) == 1  # only the add: there was nothing to remove from


def test_a_remove_only_file_to_missing_audiences_creates_nothing_and_counts_not_members():
    customers(1, 2)
    job = per_row("1;Nowhere;-\n2;Nowhere;remove\n")
    assert (job.status, counts(job)) == ("succeeded", (0, 0, 0, 2))
    assert not Audience.objects.filter(name="Nowhere").exists()
    assert job.audiences_created == [] and queries.job_report(job)["operations"] == []


def test_new_audiences_are_limited_by_the_add_rows_only(settings):
    settings.TAGBASE_IMPORT_MAX_NEW_AUDIENCES = 1
    customers(1)
    ok = per_row("1;New A;+\n1;Missing B;-\n1;Missing C;-\n")
    assert ok.status == "succeeded" and ok.audiences_created == ["New A"]
    refused = per_row("1;New D;+\n1;New E;\n")  # no sign: the import's action, add
    assert (refused.status, refused.error_code) == ("rejected", "TOO_MANY_NEW_AUDIENCES")
    assert not Audience.objects.filter(name__in=["New D", "New E"]).exists()


# --- Conflicts and duplicates -----------------------------------------------------------------


def test_a_customer_both_added_and_removed_in_one_audience_is_not_applied_at_all():
    customers(1, 2, 3)
    audience("VIP", 1)
    text = "1;VIP;-\n2;VIP;+\n1;vip;+\n1;VIP;-\n1;Other;+\n3;VIP;+\n3;VIP;+\n"
    job = per_row(text)
    assert job.invalid_by_reason == {"conflicting_action": 3}
    assert (job.invalid, job.duplicate_in_file) == (3, 1)
    assert counts(job) == (3, 0, 0, 0)  # 2 and 3 to VIP; 1 to Other (another audience)
    assert members("VIP") == {1, 2, 3} and members("Other") == {1}
    assert [r[:3] for r in rejects(job)] == [
        ["1", "1;VIP;-", "conflicting_action"],
        ["3", "1;vip;+", "conflicting_action"],
        ["4", "1;VIP;-", "conflicting_action"],
        ["7", "3;VIP;+", "duplicate_in_file"],
    ]
    assert identity_holds(job)


def test_two_cards_of_one_customer_with_opposite_actions_conflict():
    owner = make_customer()
    Card.objects.create(number="111", customer=owner)
    Card.objects.create(number="222", customer=owner)
    audience("VIP", owner.pk)
    job = per_row("111;VIP;-\n222;VIP;+\n", id_type="card")
    assert job.invalid_by_reason == {"conflicting_action": 2}
    assert members("VIP") == {owner.pk}


def test_unknown_identifiers_repeated_with_either_action_are_not_found_then_duplicates():
    customers(1)
    job = per_row("999;VIP;+\n999;VIP;-\n1;VIP;+\n")
    assert (job.not_found, job.duplicate_in_file, job.invalid) == (1, 1, 0)
    assert members("VIP") == {1}


# --- Mode single refuses the column -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [("1\n2;-\n", 2, 2), ("1;VIP;+\n", 1, 3), ("1\n2\n3\t+\n", 3, 2)],
)
def test_mode_single_refuses_a_file_with_an_action_column_naming_line_and_column(
    text, line, column
):
    customers(1, 2, 3)
    aud = audience("VIP")
    job = run_import(text, mode="single", audience_id=aud.pk, id_type="sc_id")
    assert (job.status, job.error_code, job.error_line) == (
        "rejected",
        "ACTION_COLUMN_IN_SINGLE_MODE",
        line,
    )
    assert f"Line {line}, column {column}" in job.error_message
    assert "per-row mode" in job.error_message
    assert members("VIP") == set()  # nothing applied, not even the rows before
    assert not ImportTarget.objects.filter(job=job, operation__isnull=False).exists()


def test_mode_single_still_reads_the_documented_terminators():
    customers(123, 245)
    aud = audience("VIP")
    job = run_import("123;\n245.\n", mode="single", audience_id=aud.pk, id_type="sc_id")
    assert job.status == "succeeded" and members("VIP") == {123, 245}


# --- Undo, cancel, resumption -----------------------------------------------------------------


def test_undoing_a_mixed_import_restores_exactly_the_previous_sets():
    customers(1, 2, 3, 4)
    vip = audience("VIP", 1, 2)
    audience("Lapsed", 3)
    before = {
        (m.audience_id, m.customer_id): (m.set_at, m.operation_id) for m in Membership.objects.all()
    }
    job = per_row("1;VIP;-\n3;VIP;+\n4;VIP;+\n3;Lapsed;-\n4;Fresh;+\n2;VIP;-\n")
    assert members("VIP") == {3, 4} and members("Lapsed") == set() and members("Fresh") == {4}

    services.undo_import(job, actor=ACTOR)

    after = {
        (m.audience_id, m.customer_id): (m.set_at, m.operation_id) for m in Membership.objects.all()
    }
    assert after == before  # removed members come back with their original date and operation
    assert members("Fresh") == set()  # the audience it created stays, empty
    undone = Operation.objects.filter(source_ref=f"import:{job.pk}")
    assert undone.count() == 4 and {op.status for op in undone} == {"undone"}
    vip.refresh_from_db()
    assert vip.member_count == 2 and membership_count_drift() == []
    with pytest.raises(services.ImportError_):
        services.undo_import(job, actor=ACTOR)


def test_a_mixed_import_interrupted_between_audiences_resumes_without_applying_twice(monkeypatch):
    customers(1, 2, 3)
    audience("A", 1)
    audience("B", 2)
    real = pipeline._apply_target
    calls = []

    def flaky(job, target, actor):  # type: ignore[no-untyped-def]
        calls.append((target.key, target.action))
        real(job, target, actor)
        if len(calls) == 2:  # the second target's transaction is rolled back
            raise DatabaseError("connection lost")

    monkeypatch.setattr(pipeline, "_apply_target", flaky)
    job = services.start_import(
        [b"1;A;-\n3;A;+\n2;B;-\n3;B;+\n"],
        "f.csv",
        services.ImportRequest(mode="per_row", id_type="sc_id"),
        actor=ACTOR,
        enqueue=False,
    )
    with pytest.raises(DatabaseError):
        pipeline.run_import_job(job.pk, owner="w1", retries=0)
    monkeypatch.setattr(pipeline, "_apply_target", real)
    done = pipeline.run_import_job(job.pk, owner="w1", retries=0)
    assert done is not None and done.status == "succeeded"
    assert counts(done) == (2, 0, 2, 0)
    assert members("A") == {3} and members("B") == {3}
    assert Operation.objects.filter(source_ref=f"import:{job.pk}").count() == 4
    assert membership_count_drift() == []


def test_cancelling_a_mixed_import_while_it_applies_undoes_both_actions(monkeypatch):
    customers(1, 2)
    audience("A", 1)
    real = pipeline._apply_target
    applied = []

    def cancel_after_two(job, target, actor):  # type: ignore[no-untyped-def]
        real(job, target, actor)
        applied.append((target.key, target.action))
        if len(applied) == 2:
            ImportJob.objects.filter(pk=job.pk).update(cancel_requested=True)

    monkeypatch.setattr(pipeline, "_apply_target", cancel_after_two)
    job = per_row("1;A;-\n2;A;+\n1;B;+\n")
    assert job.status == "cancelled"
    assert applied == [("a", "add"), ("a", "remove")]  # B was never reached
    assert members("A") == {1} and not members("B")
    assert {op.status for op in Operation.objects.filter(source_ref=f"import:{job.pk}")} == {
        "undone"
    }
    assert membership_count_drift() == []


# --- The command line -------------------------------------------------------------------------


def test_the_cli_prints_both_pairs_of_counters_and_the_split_per_audience(tmp_path, capsys):
    customers(1, 2, 3)
    audience("VIP", 2)
    path = tmp_path / "mixed.csv"
    path.write_text("1;VIP;+\n2;VIP;-\n3;Other;-\n", encoding="utf-8")
    call_command("import", str(path), "--per-row", "--id-type", "sc_id")
    out = capsys.readouterr().out
    for key in ("added", "removed", "not_member"):
        assert f"  {key:18} 1" in out
    assert "VIP: +1, 0 / -1, 0" in out and "Other: +0, 0 / -0, 1" in out
    assert members("VIP") == {1}


def test_the_cli_report_of_an_add_only_file_shows_only_the_add_counters(tmp_path, capsys):
    customers(1)
    path = tmp_path / "add.csv"
    path.write_text("1\n", encoding="utf-8")
    call_command("import", str(path), "--audience", "Plain", "--id-type", "sc_id")
    out = capsys.readouterr().out
    assert f"  {'added':18} 1" in out and "removed" not in out
