"""Set-operation use cases: expressions checked naming the place, the preview's regions and
change, combine as ONE undoable ``set`` operation run exactly once, its failures, idempotency,
and membership as of a moment (with a few hand-made histories; the random ones are in
test_as_of.py, the random expressions in test_oracle.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from unittest import mock

import pytest
from django.db import DatabaseError
from django.utils import timezone

from tagbase.accounts.actors import Actor
from tagbase.audiences.models import Audience, Membership, Operation, OperationKind
from tagbase.audiences.services import (
    add_customers_to_audience,
    create_audience,
    delete_audience,
    remove_customers_from_audience,
    undo_operation,
)
from tagbase.customers.models import Card
from tagbase.segments.models import Segment
from tagbase.segments.services import create_segment
from tagbase.sets import pipeline, queries, services
from tagbase.sets.expressions import SetError, parse
from tagbase.sets.models import JobStatus, SetJob
from tagbase.sets.tasks import sweep_stale_jobs
from tagbase.testing import make_customer, make_customers

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
UNION, INTER, MINUS = "\u222a", "\u2229", "\u2212"


def audience(name: str, ids: list[int]) -> Audience:
    made = create_audience(name, actor=ACTOR)
    if ids:
        add_customers_to_audience(made, ids, actor=ACTOR, kind="api")
    return made


def members(audience_id: int) -> set[int]:
    return set(
        Membership.objects.filter(audience_id=audience_id).values_list("customer_id", flat=True)
    )


def op(kind_: str, left: dict, right: dict) -> dict:
    return {"op": kind_, "left": left, "right": right}


def a(x: Audience) -> dict:
    return {"audience": x.pk}


# --- Expressions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tree", "field", "code"),
    [
        ([], "expression", "expression_invalid"),
        ({"audience": True}, "expression.audience", "expression_invalid"),
        ({"audience": 0}, "expression.audience", "expression_invalid"),
        ({"audience": "1"}, "expression.audience", "expression_invalid"),
        ({"tag": 1}, "expression", "expression_invalid"),
        ({"audience": 1, "segment": 2}, "expression", "expression_invalid"),
        ({"op": "xor", "left": {"audience": 1}, "right": {"audience": 2}}, "expression.op", None),
        ({"op": "union", "left": {"audience": 1}}, "expression", "expression_invalid"),
        (
            op(
                "union",
                op("union", {"audience": 1}, {"audience": 2}),
                op("union", {"audience": 3}, {"audience": 4}),
            ),
            "expression",
            "too_many_operands",
        ),
        (op("union", {"audience": 1}, {"segment": -1}), "expression.right.segment", None),
    ],
)
def test_an_invalid_expression_is_refused_naming_the_place(tree, field, code):
    with pytest.raises(SetError) as caught:
        parse(tree)
    assert caught.value.field == field
    assert caught.value.code == (code or "expression_invalid")
    assert caught.value.message.startswith(field.split(".")[0])


def test_operands_that_do_not_exist_or_have_a_broken_rule_are_refused_by_place():
    vip = audience("VIP", [])
    with pytest.raises(SetError) as caught:
        services.preview(op("union", a(vip), {"audience": 999_999}))
    assert (caught.value.code, caught.value.field) == (
        "audience_not_found",
        "expression.right.audience",
    )
    with pytest.raises(SetError) as caught:
        services.preview(op("difference", {"segment": 999_999}, a(vip)))
    assert (caught.value.code, caught.value.field) == (
        "segment_not_found",
        "expression.left.segment",
    )
    broken = Segment.objects.create(name="Old", rules={"op": "and", "rules": [{"field": "gone"}]})
    with pytest.raises(SetError) as caught:
        services.preview(op("union", a(vip), {"segment": broken.pk}))
    assert caught.value.code == "segment_rule_invalid" and "“Old”" in caught.value.message


def test_the_expression_reads_in_words_with_inner_combinations_in_parentheses():
    vip, buyers = audience("VIP", []), audience("Buyers", [])
    churn = create_segment("Churn", {"op": "and", "rules": []}, actor=ACTOR, refresh=False)
    shown = services.preview(
        op("difference", op("union", a(vip), a(buyers)), {"segment": churn.pk})
    )
    assert shown.summary == f"(“VIP” {UNION} “Buyers”) {MINUS} segment “Churn”"


# --- Preview ----------------------------------------------------------------------------------


def test_the_preview_counts_every_region_of_three_audiences_and_the_change_in_a_target():
    ids = make_customers(10)
    # A = 0..5, B = 3..7, C = 5..9, target T = 0, 8, 9
    x = audience("A", ids[0:6])
    y = audience("B", ids[3:8])
    z = audience("C", ids[5:10])
    t = audience("T", [ids[0], ids[8], ids[9]])
    tree = op("difference", op("union", a(x), a(y)), a(z))  # (A union B) minus C = 0..4
    shown = services.preview(tree, mode="replace", audience_id=t.pk)
    regions = {r.positions: r.count for r in shown.counts.regions}
    assert regions == {
        (0,): 3,  # 0 1 2
        (1,): 0,
        (2,): 2,  # 8 9
        (0, 1): 2,  # 3 4
        (0, 2): 0,
        (1, 2): 2,  # 6 7
        (0, 1, 2): 1,  # 5
    }
    labels = [r.label for r in shown.counts.regions]
    assert labels[0] == "“A” only" and labels[-1] == f"“A” {INTER} “B” {INTER} “C”"
    counts = shown.counts
    assert (counts.union, counts.result) == (10, 5)
    assert (counts.added, counts.kept, counts.outside) == (4, 1, 2)
    assert (shown.would_remove, shown.audience_count_after) == (2, 5)
    added = services.preview(tree, mode="add", audience_id=t.pk)
    assert (added.would_remove, added.audience_count_after) == (0, 7)


def test_the_overlap_needs_two_or_three_single_operands():
    x, y = audience("A", []), audience("B", [])
    assert len(services.overlap([a(x), a(y)]).counts.regions) == 3
    for items in ([a(x)], [a(x)] * 4, "A", [a(x), op("union", a(x), a(y))]):
        with pytest.raises(SetError):
            services.overlap(items)


def test_a_segment_operand_counts_its_members_now():
    moscow = [make_customer(city="Moscow").pk for _ in range(3)]
    make_customer(city="Omsk")
    vip = audience("VIP", [moscow[0], make_customer().pk])
    seg = create_segment(
        "Moscow",
        {"op": "and", "rules": [{"field": "customer.city", "operator": "eq", "value": "moscow"}]},
        actor=ACTOR,
    )
    shown = services.preview(op("intersect", a(vip), {"segment": seg.pk}))
    assert shown.counts.result == 1
    shown = services.preview(op("difference", {"segment": seg.pk}, a(vip)))
    assert shown.counts.result == 2


# --- Combine ----------------------------------------------------------------------------------


def test_combining_into_a_new_audience_creates_it_at_once_and_runs_once_as_one_set_operation():
    ids = make_customers(6)
    x, y = audience("A", ids[0:4]), audience("B", ids[2:6])
    job = services.combine(op("intersect", a(x), a(y)), actor=ACTOR, new_audience_name=" Both ")
    assert job.status == JobStatus.QUEUED and job.created_audience
    assert (job.result_count, job.expected_added, job.expected_removed) == (2, 2, 0)
    new = Audience.objects.get(name="Both")
    assert members(new.pk) == set()
    done = pipeline.run_set_job(job.pk)
    assert done is not None and done.status == JobStatus.SUCCEEDED
    assert pipeline.run_set_job(job.pk) is None  # finished: nothing runs twice
    assert members(new.pk) == {ids[2], ids[3]}
    operation = Operation.objects.get(pk=done.operation_id)
    assert (operation.kind, operation.action, operation.added) == (OperationKind.SET, "add", 2)
    assert operation.source_ref.startswith(f"set job {job.pk}: “A” {INTER} “B”")
    assert Operation.objects.filter(audience=new).count() == 1


def test_replace_adds_the_missing_removes_the_rest_as_one_operation_and_undo_reverts_both():
    ids = make_customers(6)
    x = audience("A", ids[0:4])
    target = audience("T", [ids[0], ids[4], ids[5]])
    before = set(
        Membership.objects.filter(audience=target).values_list(
            "customer_id", "set_at", "operation_id"
        )
    )
    # A single operand is an expression too: "make T a copy of A".
    job = services.combine(a(x), actor=ACTOR, mode="replace", audience_id=target.pk)
    done = pipeline.run_set_job(job.pk)
    operation = Operation.objects.get(pk=done.operation_id)  # type: ignore[union-attr]
    assert operation.action == "replace"
    assert (operation.added, operation.removed, operation.already_member) == (3, 2, 1)
    assert members(target.pk) == set(ids[0:4])
    target.refresh_from_db()
    assert target.member_count == 4
    undo = undo_operation(operation, actor=ACTOR)
    assert (undo.action, undo.added, undo.removed) == ("replace", 2, 3)
    after = set(
        Membership.objects.filter(audience=target).values_list(
            "customer_id", "set_at", "operation_id"
        )
    )
    assert after == before


def test_the_target_may_be_an_operand_the_result_is_read_before_it_changes():
    ids = make_customers(6)
    x, y = audience("A", ids[0:4]), audience("B", ids[2:6])
    job = services.combine(
        op("difference", a(y), a(x)), actor=ACTOR, mode="replace", audience_id=x.pk
    )
    pipeline.run_set_job(job.pk)
    assert members(x.pk) == {ids[4], ids[5]}


def test_a_job_fails_with_a_reason_and_changes_nothing_when_its_target_or_an_operand_is_gone():
    ids = make_customers(4)
    x, y = audience("A", ids[0:2]), audience("B", ids[1:4])
    target = audience("T", [])
    job = services.combine(op("union", a(x), a(y)), actor=ACTOR, audience_id=target.pk)
    delete_audience(y, actor=ACTOR)
    done = pipeline.run_set_job(job.pk)
    assert done.status == JobStatus.FAILED and "“B” was deleted" in done.error  # type: ignore[union-attr]
    assert members(target.pk) == set() and not Operation.objects.filter(audience=target).exists()

    other = services.combine(a(x), actor=ACTOR, audience_id=target.pk)
    delete_audience(target, actor=ACTOR)
    done = pipeline.run_set_job(other.pk)
    assert done.status == JobStatus.FAILED and "target audience was deleted" in done.error  # type: ignore[union-attr]


def test_a_database_failure_inside_the_job_changes_nothing_and_the_next_worker_finishes_it():
    ids = make_customers(3)
    x = audience("A", ids)
    target = audience("T", [])
    job = services.combine(op("union", a(x), a(x)), actor=ACTOR, audience_id=target.pk)
    original = pipeline._apply

    def broken(job: SetJob) -> None:
        original(job)
        raise DatabaseError("connection lost")

    with mock.patch.object(pipeline, "_apply", broken), pytest.raises(DatabaseError):
        pipeline.run_set_job(job.pk)
    assert members(target.pk) == set()
    job.refresh_from_db()
    assert job.status == JobStatus.RUNNING and job.lease_owner == ""
    assert sweep_stale_jobs() == [job.pk]
    assert pipeline.run_set_job(job.pk).status == JobStatus.SUCCEEDED  # type: ignore[union-attr]
    assert members(target.pk) == set(ids)
    assert Operation.objects.filter(audience=target).count() == 1


def test_two_workers_claim_a_job_once():
    x = audience("A", make_customers(2))
    job = services.combine(op("union", a(x), a(x)), actor=ACTOR, new_audience_name="Copy")
    assert pipeline.claim_job(job.pk, "w1")
    assert not pipeline.claim_job(job.pk, "w2")
    assert pipeline.run_set_job(job.pk, owner="w2") is None


def test_the_target_and_mode_must_make_sense():
    x = audience("A", [])
    tree = op("union", a(x), a(x))
    with pytest.raises(SetError, match="one of the two"):
        services.combine(tree, actor=ACTOR)
    with pytest.raises(SetError, match="one of the two"):
        services.combine(tree, actor=ACTOR, audience_id=x.pk, new_audience_name="New")
    with pytest.raises(SetError, match="mode add"):
        services.combine(tree, actor=ACTOR, mode="replace", new_audience_name="New")
    with pytest.raises(SetError, match="mode must be"):
        services.combine(tree, actor=ACTOR, mode="merge", audience_id=x.pk)
    with pytest.raises(SetError) as caught:
        services.combine(tree, actor=ACTOR, audience_id=999_999)
    assert caught.value.code == "audience_not_found"
    assert not Audience.objects.filter(name="New").exists()


def test_the_same_idempotency_key_returns_the_first_job_and_refuses_another_request():
    x, y = audience("A", []), audience("B", [])
    first = services.combine(
        op("union", a(x), a(y)), actor=ACTOR, audience_id=y.pk, idempotency_key="k1"
    )
    again = services.combine(
        op("union", a(x), a(y)), actor=ACTOR, audience_id=y.pk, idempotency_key="k1"
    )
    assert again.pk == first.pk
    with pytest.raises(services.IdempotencyConflict):
        services.combine(
            op("intersect", a(x), a(y)), actor=ACTOR, audience_id=y.pk, idempotency_key="k1"
        )
    other = services.combine(
        op("union", a(x), a(y)), actor=Actor.system("other"), audience_id=y.pk, idempotency_key="k1"
    )
    assert other.pk != first.pk


# --- Membership as of a moment ----------------------------------------------------------------


def at(minutes: int) -> datetime:
    return datetime(2025, 3, 1, 12, 0, tzinfo=timezone.get_current_timezone()) + timedelta(
        minutes=minutes
    )


def test_a_restored_membership_is_not_counted_between_its_removal_and_the_undo():
    ids = make_customers(2)
    clock = {"now": at(0)}
    with mock.patch.object(timezone, "now", lambda: clock["now"]):
        vip = create_audience("VIP", actor=ACTOR)
        add_customers_to_audience(vip, ids, actor=ACTOR, kind="api")  # 12:00
        clock["now"] = at(10)
        removal = remove_customers_from_audience(vip, [ids[0]], actor=ACTOR, kind="api")
        clock["now"] = at(20)
        add_customers_to_audience(vip, [ids[1]], actor=ACTOR, kind="api")  # already: keeps 12:00
        clock["now"] = at(30)
        undo_operation(removal, actor=ACTOR)  # ids[0] back with its 12:00 date
    row = Membership.objects.get(audience=vip, customer_id=ids[0])
    assert row.set_at == at(0)  # the row alone would say "member since 12:00"
    assert queries.page_as_of(vip.pk, at(5)) == ids
    assert queries.page_as_of(vip.pk, at(15)) == [ids[1]]
    assert queries.page_as_of(vip.pk, at(30)) == ids
    assert queries.count_as_of(vip.pk, at(-1)) == 0


def test_a_date_means_the_end_of_that_day_or_now_during_it_and_the_future_is_refused():
    now = datetime(2025, 3, 10, 15, 30, tzinfo=timezone.get_current_timezone())
    end = services.parse_moment("2025-03-01", now=now)
    assert (end.date(), end.hour, end.minute, end.microsecond) == (date(2025, 3, 1), 23, 59, 999999)
    assert services.parse_moment("2025-03-10", now=now) == now
    exact = services.parse_moment("2025-03-01T08:15:00+03:00", now=now)
    assert exact == datetime(2025, 3, 1, 5, 15, tzinfo=UTC)
    for text, code in [
        ("2025-03-11", "moment_in_future"),
        ("2025-03-10T16:00", "moment_in_future"),
        ("1 March", "invalid_moment"),
        ("2025-02-30", "invalid_moment"),
        ("", "invalid_moment"),
    ]:
        with pytest.raises(SetError) as caught:
            services.parse_moment(text, now=now)
        assert caught.value.code == code, text
        assert caught.value.field == "at"


def test_the_export_as_of_gives_each_identifier_type_leaving_out_customers_without_one():
    with_all = make_customer(
        external_id="ext-1",
        phone_raw="+79123456789",
        phone="+79123456789",
        email_raw="a@example.com",
        email="a@example.com",
    )
    bare = make_customer()
    Card.objects.create(customer=with_all, number="C2")
    Card.objects.create(customer=with_all, number="C1")
    Card.objects.create(customer=bare, number="C3", status="blocked")
    vip = audience("VIP", [with_all.pk, bare.pk])
    moment = timezone.now()

    def export(kind: str) -> list[str]:
        return list(queries.identifiers_as_of(vip.pk, moment, kind))

    assert export("sc_id") == [str(with_all.pk), str(bare.pk)]
    assert export("external_id") == ["ext-1"]
    assert export("phone") == ["+79123456789"]
    assert export("email") == ["a@example.com"]
    assert export("card") == ["C1", "C2"]
    found = services.as_of(vip.pk, moment)
    assert (found.audience.pk, found.count) == (vip.pk, 2)
