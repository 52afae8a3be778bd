"""``tagbase audience …``, ``tagbase operation …`` and ``tagbase reconcile``: output, JSON,
exit codes, and that every change is one operation through the write path."""

from __future__ import annotations

import io
import json
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tagbase.audiences import services
from tagbase.audiences.models import Audience, Membership, Operation, OperationKind
from tagbase.testing import make_customer, make_customers, system_actor

pytestmark = pytest.mark.django_db
ACTOR = system_actor()


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def fails(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        run(*args)
    return str(caught.value)


class FakeStdin(io.StringIO):
    """stdin that is (or is not) a terminal."""

    def __init__(self, text: str = "", tty: bool = False) -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def audience_with(name: str, ids: list[int]) -> Audience:
    audience = services.create_audience(name, actor=ACTOR)
    if ids:
        services.add_customers_to_audience(audience, ids, actor=ACTOR, kind=OperationKind.API)
    audience.refresh_from_db()
    return audience


def members(audience: Audience) -> set[int]:
    return set(Membership.objects.filter(audience=audience).values_list("customer_id", flat=True))


# --- list / show ----------------------------------------------------------------------------


def test_audience_list_shows_name_member_count_and_date_set():
    audience_with("VIP", make_customers(3))
    audience_with("Empty", [])
    out, _ = run("audience", "list")
    lines = out.splitlines()
    assert lines[0].split() == ["name", "members", "date", "set"]
    vip = next(line for line in lines if line.startswith("VIP"))
    assert vip.split()[1] == "3"
    empty = next(line for line in lines if line.startswith("Empty"))
    assert empty.split()[1:] == ["0", "-"]


def test_audience_list_json_has_the_documented_keys():
    aud = audience_with("VIP", make_customers(2))
    out, _ = run("audience", "list", "--json")
    assert json.loads(out) == [
        {
            "id": aud.pk,
            "name": "VIP",
            "member_count": 2,
            "last_set_at": aud.last_set_at.isoformat(),
        }
    ]


def test_audience_list_says_so_when_there_are_none():
    out, _ = run("audience", "list")
    assert "(none)" in out


def test_audience_show_gives_details_and_the_last_ten_operations_newest_first():
    ids = make_customers(12)
    aud = audience_with("Newsletter", [])
    for i in ids:
        services.add_customers_to_audience(aud, [i], actor=ACTOR, kind="api")
    out, _ = run("audience", "show", "newsletter", "--json")
    data = json.loads(out)
    assert data["name"] == "Newsletter" and data["member_count"] == 12
    assert len(data["operations"]) == 10
    op_ids = [op["id"] for op in data["operations"]]
    assert op_ids == sorted(op_ids, reverse=True)
    assert op_ids[0] == Operation.objects.latest("id").pk
    text, _ = run("audience", "show", "Newsletter")
    assert "Members:     12" in text and "Last operations:" in text


def test_an_unknown_audience_name_is_a_clear_error():
    message = fails("audience", "show", "Nobody")
    assert message == "No audience named 'Nobody' (see `tagbase audience list`)."


def test_audience_names_match_by_key_ignoring_case_and_spaces():
    audience_with("Лояльные покупатели", make_customers(1))
    out, _ = run("audience", "show", "  ЛОЯЛЬНЫЕ   покупатели ", "--json")
    assert json.loads(out)["name"] == "Лояльные покупатели"


# --- create / rename / delete ----------------------------------------------------------------


def test_audience_create_makes_an_empty_audience_with_a_description():
    out, _ = run("audience", "create", " Spring sale ", "--description", "For April")
    aud = Audience.objects.get()
    assert (aud.name, aud.description, aud.member_count) == ("Spring sale", "For April", 0)
    assert f"Created audience 'Spring sale' (id {aud.pk})." in out


def test_audience_create_refuses_a_name_taken_after_folding_case():
    audience_with("VIP", [])
    assert fails("audience", "create", "vip") == "An audience named 'vip' already exists."


def test_audience_create_refuses_an_invalid_name_with_the_reason():
    assert "invisible or control character" in fails("audience", "create", "VIP\u200b")
    assert Audience.objects.count() == 0


def test_audience_rename_keeps_members():
    ids = make_customers(2)
    aud = audience_with("Old", ids)
    out, _ = run("audience", "rename", "old", "New name")
    assert out.strip() == "Renamed 'Old' to 'New name'."
    aud.refresh_from_db()
    assert aud.name == "New name" and members(aud) == set(ids)


def test_audience_rename_to_a_taken_name_fails():
    audience_with("A", [])
    audience_with("B", [])
    assert "already exists" in fails("audience", "rename", "A", "b")


def test_audience_delete_with_yes_deletes_it_and_keeps_its_operations():
    aud = audience_with("Temp", make_customers(3))
    out, _ = run("audience", "delete", "Temp", "--yes")
    assert out.strip() == "Deleted audience 'Temp' (3 memberships)."
    assert not Audience.objects.filter(pk=aud.pk).exists()
    assert Operation.objects.filter(audience_name="Temp", audience__isnull=True).count() == 1


def test_audience_delete_refuses_without_yes_when_stdin_is_not_a_terminal(monkeypatch):
    audience_with("Keep", make_customers(1))
    monkeypatch.setattr(sys, "stdin", FakeStdin(tty=False))
    message = fails("audience", "delete", "Keep")
    assert message == "Refusing to delete without --yes: stdin is not a terminal."
    assert Audience.objects.filter(name="Keep").exists()


@pytest.mark.parametrize(("answer", "deleted"), [("y\n", True), ("yes\n", True), ("n\n", False)])
def test_audience_delete_asks_on_a_terminal(monkeypatch, answer, deleted):
    audience_with("Ask", make_customers(1))
    monkeypatch.setattr(sys, "stdin", FakeStdin(answer, tty=True))
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # input() writes its prompt here
    if deleted:
        run("audience", "delete", "Ask")
    else:
        assert fails("audience", "delete", "Ask") == "Not deleted."
    assert Audience.objects.filter(name="Ask").exists() is not deleted


# --- members --------------------------------------------------------------------------------


def test_audience_members_writes_a_header_then_one_id_per_line_in_id_order():
    ids = make_customers(5)
    audience_with("VIP", ids[::-1])
    out, _ = run("audience", "members", "VIP")
    assert out.splitlines() == ["sc_id", *map(str, sorted(ids))]


def test_audience_members_by_phone_escapes_formula_like_cells_and_skips_missing():
    with_phone = make_customer(phone="+79123456789", phone_raw="+7 912 345-67-89")
    without = make_customer()
    audience_with("Callable", [with_phone.pk, without.pk])
    out, _ = run("audience", "members", "Callable", "--id-type", "phone")
    assert out.splitlines() == ["phone", "'+79123456789"]


def test_audience_members_rejects_an_unknown_id_type():
    audience_with("VIP", [])
    assert "invalid choice: 'login'" in fails("audience", "members", "VIP", "--id-type", "login")


@pytest.mark.parametrize("count", [0, 1, 5001])
def test_audience_members_lists_every_member_across_batches(count):
    ids = make_customers(count)
    audience_with("Big", ids)
    out, _ = run("audience", "members", "Big")
    assert out.splitlines()[1:] == [str(i) for i in sorted(ids)]


# --- add / remove -----------------------------------------------------------------------------


def test_audience_add_from_a_file_is_one_operation_with_every_outcome_counted(tmp_path):
    a = make_customer(email="a@example.com", email_raw="a@example.com")
    b = make_customer(email="b@example.com", email_raw="b@example.com")
    make_customer(email="shared@example.com")
    make_customer(email="shared@example.com")
    aud = audience_with("Newsletter", [b.pk])
    path = tmp_path / "emails.txt"
    path.write_text(
        "A@Example.com\n\nb@example.com\nnobody@example.com\nshared@example.com\n"
        "not-an-email\na@example.com\n",
        encoding="utf-8",
    )
    before = Operation.objects.count()
    out, _ = run("audience", "add", "Newsletter", "--id-type", "email", str(path), "--json")
    data = json.loads(out)
    assert Operation.objects.count() == before + 1
    op = data["operation"]
    assert (op["added"], op["already_member"], op["not_found"]) == (1, 1, 1)
    assert (op["ambiguous"], op["invalid"], op["kind"], op["source_ref"]) == (
        1,
        1,
        "cli",
        "file:emails.txt",
    )
    assert op["actor"].startswith("cli:")
    assert data["not_found"] == ["nobody@example.com"]
    assert data["ambiguous"] == ["shared@example.com"]
    assert [r["code"] for r in data["invalid"]] == ["email_invalid"]
    assert data["duplicates"] == 1
    assert members(aud) == {a.pk, b.pk}


def test_audience_add_reads_stdin_and_prints_a_summary(monkeypatch):
    ids = make_customers(3)
    audience_with("VIP", [])
    monkeypatch.setattr(sys, "stdin", FakeStdin("\n".join(map(str, ids)) + "\n999999999\n"))
    out, _ = run("audience", "add", "VIP", "--id-type", "sc_id", "-")
    op = Operation.objects.latest("id")
    assert out.splitlines()[0] == (
        f"Operation #{op.pk} on 'VIP': added 3, already members 0, not found 1."
    )
    assert op.source_ref == "stdin"


def test_audience_add_refuses_to_wait_on_a_terminal(monkeypatch):
    audience_with("VIP", [])
    monkeypatch.setattr(sys, "stdin", FakeStdin(tty=True))
    message = fails("audience", "add", "VIP", "--id-type", "sc_id", "-")
    assert message == "stdin is a terminal: give a FILE, or pipe identifiers in (one a line)."


def test_audience_add_refuses_empty_input_and_writes_nothing(tmp_path):
    audience_with("VIP", [])
    path = tmp_path / "blank.txt"
    path.write_text("\n  \n", encoding="utf-8")
    assert fails("audience", "add", "VIP", "--id-type", "sc_id", str(path)).startswith(
        "No identifiers in file:blank.txt"
    )
    assert Operation.objects.count() == 0


def test_audience_add_reports_a_missing_file_and_a_non_utf8_file(tmp_path):
    audience_with("VIP", [])
    missing = str(tmp_path / "nope.txt")
    assert fails("audience", "add", "VIP", "--id-type", "sc_id", missing) == (
        f"{missing}: No such file or directory"
    )
    bad = tmp_path / "cp1251.txt"
    bad.write_bytes(b"1\n2\n\xc8\xe2\xe0\xed\xee\xe2\n")  # line 3: a surname in cp1251
    message = fails("audience", "add", "VIP", "--id-type", "sc_id", str(bad))
    assert message == f"{bad}: line 3 is not UTF-8 text."
    assert Operation.objects.count() == 0


def test_audience_add_skips_a_byte_order_mark_and_a_header_line(tmp_path):
    ids = make_customers(2)
    aud = audience_with("VIP", [])
    path = tmp_path / "ids.csv"
    path.write_bytes(("\ufeffsc_id\r\n" + "\r\n".join(map(str, ids)) + "\r\n").encode())
    out, _ = run("audience", "add", "VIP", "--id-type", "sc_id", str(path), "--json")
    data = json.loads(out)
    assert data["operation"]["added"] == 2 and data["invalid"] == []
    assert members(aud) == set(ids)


def test_audience_add_to_an_unknown_audience_fails_before_reading(tmp_path):
    assert "No audience named 'Ghost'" in fails(
        "audience", "add", "Ghost", "--id-type", "sc_id", str(tmp_path / "missing")
    )


def test_members_output_reads_back_into_add_including_escaped_phones(tmp_path):
    ids = [
        make_customer(phone=f"+7912345678{i}", phone_raw=f"8 912 345 67 8{i}").pk for i in range(3)
    ]
    audience_with("Source", ids)
    audience_with("Copy", [])
    exported, _ = run("audience", "members", "Source", "--id-type", "phone")
    path = tmp_path / "phones.csv"
    path.write_text(exported, encoding="utf-8")
    out, _ = run("audience", "add", "Copy", "--id-type", "phone", str(path), "--json")
    assert json.loads(out)["operation"]["added"] == 3
    assert members(Audience.objects.get(name="Copy")) == set(ids)


def test_audience_remove_takes_customers_out_as_one_operation(tmp_path):
    ids = make_customers(4)
    aud = audience_with("VIP", ids[:3])
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(map(str, ids[1:])), encoding="utf-8")
    out, _ = run("audience", "remove", "VIP", "--id-type", "sc_id", str(path), "--json")
    op = json.loads(out)["operation"]
    assert (op["action"], op["removed"], op["not_member"]) == ("remove", 2, 1)
    assert members(aud) == {ids[0]}


def test_add_without_id_type_or_file_is_a_usage_error():
    audience_with("VIP", [])
    assert "--id-type" in fails("audience", "add", "VIP", "-")
    assert "file" in fails("audience", "add", "VIP", "--id-type", "sc_id")


# --- operations -------------------------------------------------------------------------------


def test_operation_list_shows_newest_first_and_filters_by_audience():
    ids = make_customers(2)
    a = audience_with("A", ids[:1])
    audience_with("B", ids)
    services.remove_customers_from_audience(a, ids[:1], actor=ACTOR, kind="api")
    out, _ = run("operation", "list", "--json")
    data = json.loads(out)
    assert [(o["audience_name"], o["action"]) for o in data] == [
        ("A", "remove"),
        ("B", "add"),
        ("A", "add"),
    ]
    out, _ = run("operation", "list", "--audience", "a", "--limit", "1", "--json")
    assert [(o["audience_name"], o["action"]) for o in json.loads(out)] == [("A", "remove")]
    text, _ = run("operation", "list")
    assert text.splitlines()[0].split() == [
        "id", "when", "audience", "kind", "action", "changed", "status", "actor",
    ]  # fmt: skip


def test_operation_list_rejects_a_limit_below_one():
    assert "must be 1 or more" in fails("operation", "list", "--limit", "0")


def test_operation_undo_reverts_an_add_as_a_new_undo_operation():
    ids = make_customers(3)
    aud = audience_with("VIP", ids[:1])
    op = services.add_customers_to_audience(aud, ids[1:], actor=ACTOR, kind="api")
    out, _ = run("operation", "undo", str(op.pk), "--json")
    undo = json.loads(out)
    assert (undo["kind"], undo["action"], undo["removed"], undo["undoes"]) == (
        "undo",
        "remove",
        2,
        op.pk,
    )
    assert members(aud) == {ids[0]}


def test_operation_undo_twice_is_refused_with_the_reason():
    aud = audience_with("VIP", [])
    op = services.add_customers_to_audience(aud, make_customers(1), actor=ACTOR, kind="api")
    run("operation", "undo", str(op.pk))
    assert fails("operation", "undo", str(op.pk)) == f"Operation {op.pk} has already been undone."


def test_operation_undo_of_an_unknown_operation_fails():
    assert fails("operation", "undo", "424242") == (
        "No operation #424242 (see `tagbase operation list`)."
    )
    assert "expected a whole number" in fails("operation", "undo", "abc")


# --- reconcile ---------------------------------------------------------------------------------


def test_reconcile_says_all_is_exact_when_it_is():
    audience_with("VIP", make_customers(2))
    out, _ = run("reconcile")
    assert out.strip() == "Every audience's member count is exact."
    run("reconcile", "--check")  # no error: nothing drifted


@pytest.mark.skip_count_check
def test_reconcile_check_reports_drift_and_exits_1_without_fixing():
    aud = audience_with("VIP", make_customers(2))
    Audience.objects.filter(pk=aud.pk).update(member_count=7)
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("reconcile", "--check", "--json", stdout=out)
    assert caught.value.returncode == 1
    assert json.loads(out.getvalue()) == {
        "fixed": False,
        "drift": [{"id": aud.pk, "name": "VIP", "stored": 7, "actual": 2}],
    }
    aud.refresh_from_db()
    assert aud.member_count == 7


@pytest.mark.skip_count_check
def test_reconcile_fixes_drift_and_reports_it():
    aud = audience_with("VIP", make_customers(2))
    Audience.objects.filter(pk=aud.pk).update(member_count=0)
    out, _ = run("reconcile")
    assert "1 audience count(s) drifted and were fixed." in out
    aud.refresh_from_db()
    assert aud.member_count == 2
