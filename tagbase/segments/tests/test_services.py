"""Segment use cases: saving with references and cycles checked, metrics, and *Include in a
target audience* — add and remove with exact counts, one undoable operation, exactly once."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import DatabaseError
from django.utils import timezone

from tagbase.accounts.actors import Actor
from tagbase.audiences.models import Membership, Operation, OperationKind
from tagbase.audiences.services import (
    add_customers_to_audience,
    create_audience,
    undo_operation,
)
from tagbase.customers.models import Receipt
from tagbase.customers.services import refresh_customer_stats
from tagbase.segments import pipeline, services
from tagbase.segments.models import JobStatus, Segment, SegmentJob
from tagbase.segments.rules import RuleError
from tagbase.segments.tasks import sweep_stale_jobs
from tagbase.testing import make_customer, make_user

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
MOSCOW = {"op": "and", "rules": [{"field": "customer.city", "operator": "eq", "value": "moscow"}]}


def _people(moscow: int, other: int) -> list[int]:
    ids = [make_customer(city="Moscow").pk for _ in range(moscow)]
    return ids + [make_customer(city="Omsk").pk for _ in range(other)]


def _members(audience_id: int) -> set[int]:
    return set(
        Membership.objects.filter(audience_id=audience_id).values_list("customer_id", flat=True)
    )


def test_including_a_segment_adds_exactly_its_members_as_one_undoable_operation():
    ids = _people(3, 2)
    vip = create_audience("VIP", actor=ACTOR)
    add_customers_to_audience(vip, [ids[0], ids[4]], actor=ACTOR, kind="api")
    segment = services.create_segment("Muscovites", MOSCOW, actor=ACTOR)
    assert services.count_change(segment, "add", vip.pk) == 2

    job = services.include_in_audience(segment, action="add", audience_id=vip.pk, actor=ACTOR)
    assert job.expected == 2 and job.status == JobStatus.QUEUED
    done = pipeline.run_segment_job(job.pk)

    assert done is not None and done.status == JobStatus.SUCCEEDED
    op = Operation.objects.get(pk=done.operation_id)
    assert (op.kind, op.added, op.already_member) == (OperationKind.SEGMENT, 2, 1)
    assert _members(vip.pk) == {ids[0], ids[1], ids[2], ids[4]}
    undo_operation(op, actor=ACTOR)
    assert _members(vip.pk) == {ids[0], ids[4]}


def test_removing_a_segment_removes_only_members_who_match_and_undo_restores_them():
    ids = _people(3, 2)
    vip = create_audience("VIP", actor=ACTOR)
    add_customers_to_audience(vip, ids[1:], actor=ACTOR, kind="api")
    segment = services.create_segment("Muscovites", MOSCOW, actor=ACTOR)
    assert services.count_change(segment, "remove", vip.pk) == 2

    job = services.include_in_audience(segment, action="remove", audience_id=vip.pk, actor=ACTOR)
    done = pipeline.run_segment_job(job.pk)

    op = Operation.objects.get(pk=done.operation_id)  # type: ignore[union-attr]
    assert (op.removed, op.not_member) == (2, 1)
    assert _members(vip.pk) == {ids[3], ids[4]}
    undo_operation(op, actor=ACTOR)
    assert _members(vip.pk) == set(ids[1:])


def test_a_new_audience_name_is_created_at_once_and_only_for_add():
    _people(2, 1)
    segment = services.create_segment("Muscovites", MOSCOW, actor=ACTOR)
    job = services.include_in_audience(
        segment, action="add", new_audience_name="Moscow fans", actor=ACTOR
    )
    assert job.audience is not None and job.audience.name == "Moscow fans"
    assert job.expected == 2
    pipeline.run_segment_job(job.pk)
    assert len(_members(job.audience.pk)) == 2
    with pytest.raises(services.SegmentError, match="only be removed from an existing"):
        services.include_in_audience(segment, action="remove", new_audience_name="X", actor=ACTOR)
    with pytest.raises(Exception, match="already exists"):
        services.include_in_audience(
            segment, action="add", new_audience_name="moscow FANS", actor=ACTOR
        )


def test_a_job_runs_once_even_when_started_twice_or_by_two_workers():
    _people(2, 0)
    vip = create_audience("VIP", actor=ACTOR)
    segment = services.create_segment("Muscovites", MOSCOW, actor=ACTOR)
    job = services.include_in_audience(segment, action="add", audience_id=vip.pk, actor=ACTOR)
    assert pipeline.claim_job(job.pk, "worker-a")
    assert pipeline.run_segment_job(job.pk, owner="worker-b") is None  # a live lease elsewhere
    SegmentJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(1))
    assert pipeline.run_segment_job(job.pk, owner="worker-b").status == JobStatus.SUCCEEDED  # type: ignore[union-attr]
    assert pipeline.run_segment_job(job.pk, owner="worker-c") is None
    assert Operation.objects.filter(kind=OperationKind.SEGMENT).count() == 1


def test_a_failure_inside_the_job_changes_nothing_and_the_next_worker_finishes_it(monkeypatch):
    ids = _people(3, 0)
    vip = create_audience("VIP", actor=ACTOR)
    segment = services.create_segment("Muscovites", MOSCOW, actor=ACTOR)
    job = services.include_in_audience(segment, action="add", audience_id=vip.pk, actor=ACTOR)
    real_save = SegmentJob.save

    def broken_save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if self.status == JobStatus.SUCCEEDED:
            raise DatabaseError("connection lost")  # after the memberships were written
        return real_save(self, *args, **kwargs)

    monkeypatch.setattr(SegmentJob, "save", broken_save)
    with pytest.raises(DatabaseError):
        pipeline.run_segment_job(job.pk)
    assert _members(vip.pk) == set()
    assert not Operation.objects.filter(kind=OperationKind.SEGMENT).exists()
    monkeypatch.setattr(SegmentJob, "save", real_save)
    SegmentJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(days=1))
    assert job.pk in sweep_stale_jobs()  # released: handed out again
    assert pipeline.run_segment_job(job.pk).status == JobStatus.SUCCEEDED  # type: ignore[union-attr]
    assert _members(vip.pk) == set(ids)


def test_a_job_whose_audience_was_deleted_fails_with_a_reason():
    _people(1, 0)
    vip = create_audience("VIP", actor=ACTOR)
    segment = services.create_segment("Muscovites", MOSCOW, actor=ACTOR)
    job = services.include_in_audience(segment, action="add", audience_id=vip.pk, actor=ACTOR)
    from tagbase.audiences.services import delete_audience

    delete_audience(vip, actor=ACTOR)
    done = pipeline.run_segment_job(job.pk)
    assert done is not None and done.status == JobStatus.FAILED
    assert "deleted" in done.error


def test_the_same_idempotency_key_returns_the_first_job_and_refuses_another_request():
    _people(1, 0)
    vip = create_audience("VIP", actor=ACTOR)
    other = create_audience("Other", actor=ACTOR)
    segment = services.create_segment("Muscovites", MOSCOW, actor=ACTOR)
    first = services.include_in_audience(
        segment, action="add", audience_id=vip.pk, actor=ACTOR, idempotency_key="k1"
    )
    again = services.include_in_audience(
        segment, action="add", audience_id=vip.pk, actor=ACTOR, idempotency_key="k1"
    )
    assert again.pk == first.pk
    with pytest.raises(services.IdempotencyConflict):
        services.include_in_audience(
            segment, action="add", audience_id=other.pk, actor=ACTOR, idempotency_key="k1"
        )
    assert SegmentJob.objects.count() == 1


def test_references_must_exist_and_a_segment_cannot_include_itself_through_others():
    a = services.create_segment("A", MOSCOW, actor=ACTOR)
    b = services.create_segment(
        "B", {"rules": [{"field": "segment", "operator": "in", "value": a.pk}]}, actor=ACTOR
    )
    with pytest.raises(RuleError) as caught:
        services.update_segment(
            a,
            actor=ACTOR,
            rules={"rules": [{"field": "segment", "operator": "not_in", "value": b.pk}]},
        )
    assert caught.value.code == "segment_cycle"
    assert caught.value.field == "rules[0].value"
    assert "“A” → “B” → “A”" in caught.value.message
    with pytest.raises(RuleError, match="audience 999999 does not exist"):
        services.create_segment(
            "C", {"rules": [{"field": "audience", "operator": "in", "value": 999999}]}, actor=ACTOR
        )
    with pytest.raises(services.SegmentInUse, match="used by “B”"):
        services.delete_segment(a, actor=ACTOR)
    services.delete_segment(b, actor=ACTOR)
    services.delete_segment(a, actor=ACTOR)
    assert not Segment.objects.exists()


def test_a_segment_in_a_segment_uses_the_inner_rule():
    ids = _people(2, 2)
    inner = services.create_segment("Muscovites", MOSCOW, actor=ACTOR)
    outer = services.create_segment(
        "Not Muscovites",
        {"rules": [{"field": "segment", "operator": "not_in", "value": inner.pk}]},
        actor=ACTOR,
    )
    assert outer.customers == 2
    shown = services.preview(outer.rules)
    assert {c.pk for c in shown.sample} == set(ids[2:])
    assert shown.summary == "Is not in segment “Muscovites”"


def test_names_are_unique_after_folding_and_duplicates_get_a_free_name():
    segment = services.create_segment("Muscovites", MOSCOW, actor=ACTOR)
    with pytest.raises(services.SegmentNameTaken):
        services.create_segment("  MUSCOVITES ", MOSCOW, actor=ACTOR)
    copy = services.duplicate_segment(segment, actor=ACTOR)
    copy2 = services.duplicate_segment(segment, actor=ACTOR)
    assert (copy.name, copy2.name) == ("Muscovites (copy)", "Muscovites (copy 2)")
    assert copy.rules == segment.rules


def test_metrics_are_stored_with_their_time_and_stale_ones_are_refreshed():
    ids = _people(1, 1)
    now = timezone.now()
    Receipt.objects.create(customer_id=ids[0], number="r1", date=now, amount=Decimal("30.00"))
    Receipt.objects.create(customer_id=ids[0], number="r2", date=now, amount=Decimal("10.01"))
    Receipt.objects.create(customer_id=ids[1], number="r3", date=now, amount=Decimal("60.00"))
    refresh_customer_stats(ids)
    user = make_user()
    segment = services.create_segment("Muscovites", MOSCOW, actor=Actor.of_user(user))
    assert segment.customers == 1
    assert segment.percent_customers == Decimal("50.00")
    assert segment.percent_revenue == Decimal("40.01")
    assert segment.average_receipt == Decimal("20.01")  # 40.01 / 2, half-up
    assert segment.total_value == Decimal("40.01")
    assert segment.metrics_at is not None and segment.created_by == user
    Segment.objects.filter(pk=segment.pk).update(metrics_at=now - timedelta(days=1))
    assert services.refresh_stale_metrics() == [segment.pk]
    assert services.refresh_stale_metrics(now=now - timedelta(days=2)) == []
