"""Dry run and commit, cancel, undo, remove mode, retention: the life of an import job."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from tagbase.accounts.actors import Actor
from tagbase.audiences import services as audience_services
from tagbase.audiences.models import Audience, Membership, Operation
from tagbase.imports import pipeline, queries, services
from tagbase.imports.models import ImportJob
from tagbase.imports.tests.helpers import identity_holds, run_import
from tagbase.testing import make_customer

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")


def customers(*sc_ids: int) -> None:
    for sc_id in sc_ids:
        make_customer(sc_id=sc_id)


def members(name: str) -> set[int]:
    aud = Audience.objects.filter(name=name).first()
    if aud is None:
        return set()
    return set(Membership.objects.filter(audience=aud).values_list("customer_id", flat=True))


def test_a_dry_run_previews_exactly_and_changes_nothing_until_committed():
    customers(1, 2, 3)
    aud = audience_services.create_audience("VIP", actor=ACTOR)
    audience_services.add_customers_to_audience(aud, [1], actor=ACTOR, kind="ui")
    job = run_import(
        "1\n2\n2\n9\nx\n", mode="single", audience_id=aud.pk, id_type="sc_id", dry_run=True
    )
    assert job.status == "previewed"
    preview = queries.job_report(job)
    assert (
        preview["added"],
        preview["already_member"],
        preview["duplicate_in_file"],
        preview["not_found"],
        preview["invalid"],
    ) == (1, 1, 1, 1, 1)
    assert members("VIP") == {1}
    assert queries.rejects_path(job) is not None

    services.commit_import(job, actor=ACTOR, enqueue=False)
    done = pipeline.run_import_job(job.pk, owner="test")
    assert done is not None and done.status == "succeeded_with_rejections"
    assert (done.added, done.already_member) == (1, 1)
    assert members("VIP") == {1, 2}
    assert identity_holds(done)


def test_a_dry_run_lists_the_audiences_it_would_create_and_creates_none():
    customers(1, 2)
    job = run_import("1;New A\n2;New B\n", mode="per_row", id_type="sc_id", dry_run=True)
    assert sorted(job.audiences_created) == ["New A", "New B"]
    assert Audience.objects.count() == 0


def test_only_a_previewed_job_can_be_committed():
    customers(1)
    job = run_import("1\n", mode="single", audience_name="X", id_type="sc_id")
    with pytest.raises(services.ImportError_):
        services.commit_import(job, actor=ACTOR, enqueue=False)


def test_cancelling_a_queued_job_ends_it_and_applies_nothing():
    customers(1)
    req = services.ImportRequest(mode="single", audience_name="X", id_type="sc_id")
    job = services.start_import([b"1\n"], "f.csv", req, actor=ACTOR, enqueue=False)
    services.cancel_import(job, actor=ACTOR)
    assert pipeline.run_import_job(job.pk, owner="test") is None  # nothing left to run
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert not Audience.objects.filter(name="X").exists()


def test_cancelling_during_apply_undoes_what_was_applied(monkeypatch):
    customers(1, 2)
    job = run_import("1;A\n2;B\n", mode="per_row", id_type="sc_id", dry_run=True)
    services.commit_import(job, actor=ACTOR, enqueue=False)
    real = pipeline._apply_target

    def apply_then_cancel(job_, target, actor):  # type: ignore[no-untyped-def]
        real(job_, target, actor)
        ImportJob.objects.filter(pk=job_.pk).update(cancel_requested=True)

    monkeypatch.setattr(pipeline, "_apply_target", apply_then_cancel)
    done = pipeline.run_import_job(job.pk, owner="test")
    assert done is not None and done.status == "cancelled"
    assert members("A") == set() and members("B") == set()
    assert Operation.objects.filter(kind="undo").count() == 1


def test_undo_restores_the_previous_sets_including_earlier_members():
    customers(1, 2, 3)
    aud = audience_services.create_audience("VIP", actor=ACTOR)
    audience_services.add_customers_to_audience(aud, [1], actor=ACTOR, kind="ui")
    job = run_import("1\n2\n", mode="single", audience_id=aud.pk, id_type="sc_id")
    assert members("VIP") == {1, 2}
    services.undo_import(job, actor=ACTOR)
    assert members("VIP") == {1}
    with pytest.raises(services.ImportError_):
        services.undo_import(job, actor=ACTOR)


def test_remove_mode_removes_members_and_counts_non_members():
    customers(1, 2, 3)
    aud = audience_services.create_audience("VIP", actor=ACTOR)
    audience_services.add_customers_to_audience(aud, [1, 2], actor=ACTOR, kind="ui")
    job = run_import("1\n3\n", mode="single", action="remove", audience_id=aud.pk, id_type="sc_id")
    assert (job.removed, job.not_member) == (1, 1)
    assert members("VIP") == {2}
    assert identity_holds(job)


def test_per_row_remove_from_a_missing_audience_counts_not_member_and_creates_nothing():
    customers(1, 2)
    aud = audience_services.create_audience("A", actor=ACTOR)
    audience_services.add_customers_to_audience(aud, [1], actor=ACTOR, kind="ui")
    job = run_import("1;A\n2;Nope\n", mode="per_row", action="remove", id_type="sc_id")
    assert (job.removed, job.not_member) == (1, 1)
    assert not Audience.objects.filter(name="Nope").exists()
    assert identity_holds(job)


def test_remove_from_a_new_name_is_refused_before_upload():
    with pytest.raises(services.ImportError_) as exc:
        services.validate_request(
            services.ImportRequest(
                mode="single", action="remove", audience_name="Nope", id_type="sc_id"
            )
        )
    assert exc.value.field == "audience"


@pytest.mark.parametrize(
    ("field", "request_kwargs"),
    [
        ("mode", {"mode": "both"}),
        ("action", {"action": "toggle"}),
        ("id_type", {"id_type": "passport"}),
        ("encoding", {"encoding": "koi8-r"}),
        ("delimiter", {"delimiter": "|"}),
        ("audience", {"audience_name": ""}),
        ("audience", {"audience_id": 999999}),
    ],
)
def test_bad_options_are_refused_naming_the_field(field, request_kwargs):
    kwargs = {"mode": "single", "audience_name": "A", "id_type": "sc_id", **request_kwargs}
    with pytest.raises(services.ImportError_) as exc:
        services.validate_request(services.ImportRequest(**kwargs))
    assert exc.value.field == field


def test_retention_purges_stored_files_but_keeps_the_report_counters():
    customers(1)
    job = run_import("1\n2\n", mode="single", audience_name="X", id_type="sc_id")
    stored = pipeline.import_dir() / job.stored_name
    assert stored.exists() and queries.rejects_path(job) is not None
    assert services.purge_expired_files() == 0
    later = timezone.now() + timedelta(days=31)
    assert services.purge_expired_files(now=later) == 1
    job.refresh_from_db()
    assert not stored.exists() and queries.rejects_path(job) is None
    assert (job.added, job.not_found) == (1, 1)


def test_two_imports_into_the_same_audience_give_the_union():
    customers(1, 2, 3)
    run_import("1\n2\n", mode="single", audience_name="U", id_type="sc_id")
    run_import("2\n3\n", mode="single", audience_name="U", id_type="sc_id")
    assert members("U") == {1, 2, 3}


def test_a_resumed_job_continues_after_its_checkpoint_without_double_counting(settings):
    settings.TAGBASE_IMPORT_BATCH_ROWS = 2
    customers(*range(1, 8))
    req = services.ImportRequest(mode="single", audience_name="R", id_type="sc_id")
    job = services.start_import(
        [b"1\n2\n3\n4\n5\n6\n7\n"], "f.csv", req, actor=ACTOR, enqueue=False
    )
    real = pipeline._commit_batch
    calls = {"n": 0}

    def crash_on_third_batch(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("worker killed")
        return real(*args, **kwargs)

    pipeline._commit_batch = crash_on_third_batch  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.run_import_job(job.pk, owner="w1")
    finally:
        pipeline._commit_batch = real  # type: ignore[assignment]
    job.refresh_from_db()
    assert job.checkpoint_line == 4 and job.rows_read == 4
    ImportJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now())
    done = pipeline.run_import_job(job.pk, owner="w2")
    assert done is not None and done.status == "succeeded"
    assert (done.rows_read, done.added) == (7, 7)
    assert members("R") == set(range(1, 8))


def test_an_idempotency_key_replays_the_first_job_and_refuses_another_request():
    customers(1)
    req = services.ImportRequest(mode="single", audience_name="K", id_type="sc_id")
    first = services.start_import(
        [b"1\n"], "f.csv", req, actor=ACTOR, enqueue=False, idempotency_key="abc"
    )
    again = services.start_import(
        [b"1\n"], "other-name.csv", req, actor=ACTOR, enqueue=False, idempotency_key="abc"
    )
    assert again.pk == first.pk
    assert ImportJob.objects.count() == 1
    with pytest.raises(services.IdempotencyConflict) as exc:
        services.start_import(
            [b"2\n"], "f.csv", req, actor=ACTOR, enqueue=False, idempotency_key="abc"
        )
    assert exc.value.code == "idempotency_key_reused"
    other_actor = Actor.system("someone-else")
    assert (
        services.start_import(
            [b"1\n"], "f.csv", req, actor=other_actor, enqueue=False, idempotency_key="abc"
        ).pk
        != first.pk
    )
    assert len(list(pipeline.import_dir().glob("*.csv"))) == 2
