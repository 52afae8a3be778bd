"""``tagbase segment …``: every subcommand's output, JSON, errors and that changes go through the
services (one operation per include, undoable)."""

from __future__ import annotations

import io
import json
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tagbase.audiences.models import Audience, Membership, Operation
from tagbase.audiences.services import create_audience, undo_operation
from tagbase.segments.models import Segment, SegmentJob
from tagbase.segments.pipeline import run_segment_job
from tagbase.segments.services import create_segment
from tagbase.testing import make_customer, system_actor

pytestmark = pytest.mark.django_db
ACTOR = system_actor()


def run(*args: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue()


def fails(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        run(*args)
    return str(caught.value)


class FakeStdin(io.StringIO):
    def __init__(self, text: str = "", tty: bool = False) -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def city_rule(city: str = "Moscow") -> dict:
    return {"op": "and", "rules": [{"field": "customer.city", "operator": "eq", "value": city}]}


def rules_file(tmp_path, rules: object, name: str = "rules.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(rules), encoding="utf-8")
    return str(path)


def in_city(count: int, city: str = "Moscow") -> list[int]:
    return [make_customer(city=city).pk for _ in range(count)]


def members_of(audience: Audience) -> set[int]:
    return set(Membership.objects.filter(audience=audience).values_list("customer_id", flat=True))


# --- create / list / show ---------------------------------------------------------------------


def test_create_reads_the_rule_from_a_file_and_reports_the_count(tmp_path):
    in_city(2)
    in_city(1, "Kazan")
    out = run("segment", "create", "Moscow", "--rules", rules_file(tmp_path, city_rule()))
    segment = Segment.objects.get()
    assert out.strip() == f"Created segment 'Moscow' (id {segment.pk}): 2 customers."
    assert segment.customers == 2


def test_create_reads_stdin_and_prints_json(tmp_path, monkeypatch):
    in_city(1)
    monkeypatch.setattr(sys, "stdin", FakeStdin(json.dumps(city_rule())))
    data = json.loads(run("segment", "create", "M", "--rules", "-", "--json"))
    assert data["name"] == "M" and data["metrics"]["customers"] == 1
    assert data["rules"]["rules"][0]["value"] == "Moscow" and "summary" in data


def test_create_refuses_a_terminal_on_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", FakeStdin(tty=True))
    assert "stdin is a terminal" in fails("segment", "create", "M", "--rules", "-")


def test_create_errors_are_one_line_naming_the_problem(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text("{nope", encoding="utf-8")
    assert fails("segment", "create", "M", "--rules", str(broken)).startswith(
        f"{broken}: not valid JSON: "
    )
    assert "No such file" in fails("segment", "create", "M", "--rules", str(tmp_path / "x.json"))
    bad = {"op": "and", "rules": [{"field": "customer.age", "operator": "gte", "value": "abc"}]}
    message = fails("segment", "create", "M", "--rules", rules_file(tmp_path, bad))
    assert message.startswith("rules[0].value: ")
    create_segment("Taken", city_rule(), actor=ACTOR)
    assert "already exists" in fails(
        "segment", "create", "taken", "--rules", rules_file(tmp_path, city_rule())
    )
    assert Segment.objects.count() == 1


def test_list_and_show(tmp_path):
    in_city(3)
    segment = create_segment("Moscow", city_rule(), actor=ACTOR, description="Capital")
    create_segment("Kazan", city_rule("Kazan"), actor=ACTOR)
    lines = run("segment", "list").splitlines()
    assert lines[0].split()[:3] == ["id", "name", "customers"]
    assert [line.split()[1] for line in lines[2:]] == ["Kazan", "Moscow"]
    assert json.loads(run("segment", "list", "--json"))[1]["metrics"]["customers"] == 3
    text = run("segment", "show", "moscow")
    assert "Segment:     Moscow" in text and "Customers:   3" in text and "Capital" in text
    by_id = json.loads(run("segment", "show", str(segment.pk), "--json"))
    assert by_id["id"] == segment.pk and by_id["uses"] == []
    assert fails("segment", "show", "Nobody") == (
        "No segment named 'Nobody' (see `tagbase segment list`)."
    )


# --- update / delete / refresh ----------------------------------------------------------------


def test_update_changes_the_rule_and_name(tmp_path):
    in_city(2, "Kazan")
    create_segment("S", city_rule(), actor=ACTOR)
    out = run(
        "segment", "update", "S", "--name", "Kazan", "--rules",
        rules_file(tmp_path, city_rule("Kazan")),
    )  # fmt: skip
    assert "Updated segment 'Kazan'" in out and "2 customers" in out
    assert Segment.objects.get().rules == city_rule("Kazan") | {"negate": False}
    assert "Nothing to change" in fails("segment", "update", "Kazan")


def test_update_refuses_a_cycle(tmp_path):
    a = create_segment("A", city_rule(), actor=ACTOR)
    uses_a = {"op": "and", "rules": [{"field": "segment", "operator": "in", "value": a.pk}]}
    b = create_segment("B", uses_a, actor=ACTOR)
    uses_b = {"op": "and", "rules": [{"field": "segment", "operator": "in", "value": b.pk}]}
    message = fails("segment", "update", "A", "--rules", rules_file(tmp_path, uses_b))
    assert "a segment cannot include itself" in message


def test_delete_with_yes_and_refusals():
    a = create_segment("A", city_rule(), actor=ACTOR)
    uses_a = {"op": "and", "rules": [{"field": "segment", "operator": "in", "value": a.pk}]}
    create_segment("B", uses_a, actor=ACTOR)
    assert "is used by “B”" in fails("segment", "delete", "A", "--yes")
    assert "without --yes" in fails("segment", "delete", "B")
    assert run("segment", "delete", "B", "--yes").strip() == "Deleted segment 'B'."
    run("segment", "delete", "A", "--yes")
    assert not Segment.objects.exists()


def test_refresh_recomputes_the_metrics():
    create_segment("Moscow", city_rule(), actor=ACTOR)
    in_city(2)
    data = json.loads(run("segment", "refresh", "Moscow", "--json"))
    assert data["metrics"]["customers"] == 2
    assert Segment.objects.get().customers == 2


# --- preview / export -------------------------------------------------------------------------


def test_preview_a_rule_file_or_a_saved_segment(tmp_path):
    ids = in_city(3)
    in_city(1, "Kazan")
    data = json.loads(
        run("segment", "preview", "--rules", rules_file(tmp_path, city_rule()), "--json")
    )
    assert data["metrics"]["customers"] == 3
    assert data["metrics"]["percent_customers"] == "75.00"
    assert data["sample"] == ids
    create_segment("Moscow", city_rule(), actor=ACTOR)
    text = run("segment", "preview", "--segment", "Moscow", "--sample", "2")
    assert "Customers:   3 (75.00% of all customers)" in text
    assert f"First members (sc_id): {ids[0]}, {ids[1]}" in text
    assert "--sample must be" in fails(
        "segment", "preview", "--segment", "Moscow", "--sample", "-1"
    )


def test_export_writes_a_header_and_one_identifier_a_line():
    a = make_customer(city="Moscow", phone="+79990000001")
    b = make_customer(city="Moscow")
    create_segment("Moscow", city_rule(), actor=ACTOR)
    assert run("segment", "export", "Moscow").splitlines() == ["sc_id", str(a.pk), str(b.pk)]
    phones = run("segment", "export", "Moscow", "--id-type", "phone").splitlines()
    assert phones == ["phone", "'+79990000001"]


# --- to-audience / job ------------------------------------------------------------------------


def test_to_audience_with_wait_runs_the_job_here_as_one_undoable_operation():
    ids = in_city(2)
    in_city(1, "Kazan")
    target = create_audience("Target", actor=ACTOR)
    create_segment("Moscow", city_rule(), actor=ACTOR)
    data = json.loads(
        run("segment", "to-audience", "Moscow", "--audience", "target", "--wait", "--json")
    )
    assert (data["status"], data["expected"], data["added"]) == ("succeeded", 2, 2)
    assert members_of(target) == set(ids)
    op = Operation.objects.get(pk=data["operation"])
    assert op.kind == "segment" and op.actor_label.startswith("cli:")
    undo_operation(op, actor=ACTOR)
    assert members_of(target) == set()


def test_to_audience_without_wait_queues_the_job_for_a_worker():
    in_city(1)
    create_segment("Moscow", city_rule(), actor=ACTOR)
    out = run("segment", "to-audience", "Moscow", "--new-audience", "Fresh")
    job = SegmentJob.objects.get()
    assert job.status == "queued"
    assert f"Job #{job.pk} (queued)" in out and f"tagbase segment job {job.pk}" in out
    fresh = Audience.objects.get(name="Fresh")
    assert members_of(fresh) == set()
    run_segment_job(job.pk)  # what the worker does
    status = run("segment", "job", str(job.pk))
    assert f"Job #{job.pk} (succeeded)" in status and "added 1" in status
    assert json.loads(run("segment", "job", str(job.pk), "--json"))["added"] == 1


def test_to_audience_remove_and_refusals():
    ids = in_city(2)
    target = create_audience("Target", actor=ACTOR)
    create_segment("Moscow", city_rule(), actor=ACTOR)
    run("segment", "to-audience", "Moscow", "--audience", "Target", "--wait")
    out = run(
        "segment", "to-audience", "Moscow", "--audience", "Target", "--action", "remove", "--wait"
    )
    assert "(succeeded)" in out and "removed 2" in out
    assert members_of(target) == set() and len(ids) == 2
    assert "No audience named" in fails("segment", "to-audience", "Moscow", "--audience", "Nobody")
    assert "only be removed from an existing audience" in fails(
        "segment", "to-audience", "Moscow", "--new-audience", "X", "--action", "remove"
    )
    assert "already exists" in fails("segment", "to-audience", "Moscow", "--new-audience", "target")


def test_an_unknown_job_is_a_clear_error():
    assert fails("segment", "job", "987654") == "Job 987654 does not exist."
