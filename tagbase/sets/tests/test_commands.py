"""``tagbase sets …``: combine (queued, --wait, --dry-run, replace), overlap, as-of (count, JSON,
members as CSV) and job, with their errors; changes go through the services as one operation."""

from __future__ import annotations

import csv
import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from tagbase.audiences.models import Audience, Membership, Operation, OperationKind
from tagbase.audiences.services import (
    add_customers_to_audience,
    create_audience,
    remove_customers_from_audience,
)
from tagbase.segments.services import create_segment
from tagbase.sets.models import JobStatus, SetJob
from tagbase.sets.pipeline import run_set_job
from tagbase.testing import make_customer, make_customers, system_actor

pytestmark = pytest.mark.django_db
ACTOR = system_actor()


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("sets", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def fails(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        run(*args)
    return str(caught.value)


def members(name: str) -> set[int]:
    audience = Audience.objects.get(name=name)
    return set(Membership.objects.filter(audience=audience).values_list("customer_id", flat=True))


def setup() -> list[int]:
    ids = make_customers(6)
    for name, chosen in [("VIP", ids[0:4]), ("Buyers", ids[2:6])]:
        add_customers_to_audience(
            create_audience(name, actor=ACTOR), chosen, actor=ACTOR, kind="api"
        )
    return ids


def test_combine_with_wait_runs_the_job_here_as_one_set_operation():
    ids = setup()
    out = run("combine", "VIP", "minus", "audience:Buyers", "--new-audience", "Only VIP", "--wait")
    assert out.startswith("Job #") and "(succeeded)" in out and "added 2" in out
    assert members("Only VIP") == {ids[0], ids[1]}
    op = Operation.objects.get(kind=OperationKind.SET)
    assert op.actor_label.startswith("cli:")


def test_combine_without_wait_queues_the_job_for_a_worker():
    setup()
    out = run("combine", "VIP", "\u222a", "Buyers", "--audience", "VIP", "--json")
    data = json.loads(out)
    assert data["status"] == JobStatus.QUEUED and data["expected_added"] == 2
    job = SetJob.objects.get()
    assert run_set_job(job.pk).status == JobStatus.SUCCEEDED  # type: ignore[union-attr]
    line = run("job", str(job.pk))
    assert f"Job #{job.pk} (succeeded)" in line and "added 2" in line


def test_a_dry_run_shows_the_regions_and_the_change_and_changes_nothing():
    ids = setup()
    seg = create_segment("All", {"op": "and", "rules": []}, actor=ACTOR, refresh=False)
    out = run(
        "combine", "VIP", "intersect", "Buyers", "union", f"segment:{seg.pk}",
        "--audience", "VIP", "--mode", "replace", "--dry-run",
    )  # fmt: skip
    assert "Result:     6 customers" in out
    assert "would add 2, remove 0; 4 already members; 6 members after" in out
    assert "segment “All” only" in out
    assert not SetJob.objects.exists() and members("VIP") == set(ids[0:4])


def test_replace_mode_makes_the_audience_equal_to_the_result():
    ids = setup()
    run("combine", "VIP", "intersect", "Buyers", "--audience", "VIP", "--mode", "replace", "--wait")
    assert members("VIP") == {ids[2], ids[3]}
    assert Operation.objects.get(kind=OperationKind.SET).removed == 2


def test_overlap_prints_every_region_and_json():
    setup()
    out = run("overlap", "VIP", "Buyers")
    assert "“VIP” only" in out and "“Buyers” only" in out and "Result:     6 customers" in out
    data = json.loads(run("overlap", "VIP", "Buyers", "--json"))
    assert [(r["operands"], r["count"]) for r in data["regions"]] == [
        ([0], 2),
        ([1], 2),
        ([0, 1], 2),
    ]


def test_as_of_counts_and_writes_the_members_as_csv():
    ids = setup()
    remove_customers_from_audience(
        Audience.objects.get(name="VIP"), [ids[0]], actor=ACTOR, kind="api"
    )
    today = timezone.localdate().isoformat()
    assert "3 members" in run("as-of", "VIP", "--at", today)
    data = json.loads(run("as-of", "VIP", "--at", today, "--json"))
    assert data["count"] == 3 and data["audience_name"] == "VIP"
    rows = list(csv.reader(io.StringIO(run("as-of", "VIP", "--at", today, "--members"))))
    assert rows == [["sc_id"], *([str(i)] for i in ids[1:4])]


def test_errors_name_what_is_wrong():
    setup()
    make_customer()
    assert "Give OPERAND OPERATOR OPERAND" in fails("combine", "VIP", "--new-audience", "X")
    assert "'plus' is not an operator" in fails(
        "combine", "VIP", "plus", "Buyers", "--new-audience", "X"
    )
    assert "No audience named 'Nope'" in fails(
        "combine", "VIP", "union", "Nope", "--new-audience", "X"
    )
    assert "No segment named" in fails("overlap", "VIP", "segment:Nope")
    assert "already exists" in fails("combine", "VIP", "union", "Buyers", "--new-audience", "vip")
    assert "give 2 to 3 operands" in fails("overlap", "VIP")
    assert "is in the future" in fails("as-of", "VIP", "--at", "2999-01-01")
    assert "is not a date" in fails("as-of", "VIP", "--at", "yesterday")
    assert "does not exist" in fails("job", "999999")
    assert not SetJob.objects.exists()
