"""Four real `tagbase worker` processes against one PostgreSQL, with several imports and segment
operations in flight at once: every job is applied exactly once and every result is exact.

Production runs N web and M worker processes on one database (docs/howto/run-in-production.md).
Here eight jobs — four imports and four segment inclusions (adds and removes, two of them on the
same audience) — are queued before four workers start, so the workers race for them. Each job
must end succeeded, with exactly one operation; the final sets must equal an oracle computed in
Python and every audience's count must be exact.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tagbase.accounts.actors import Actor
from tagbase.audiences import services as audience_services
from tagbase.audiences.models import Audience, Membership, Operation, OperationKind
from tagbase.customers.models import Customer
from tagbase.imports import services as import_services
from tagbase.imports.models import ImportJob
from tagbase.segments import services as segment_services
from tagbase.segments.models import JobStatus, SegmentJob
from tests.faults.workers import start_worker, stop, wait_for

pytestmark = pytest.mark.postgres_only

CUSTOMERS = 20_000
WORKERS = 4
ACTOR = Actor.system("multi-worker-test")
CITIES = ["Moscow", "Omsk", "Kazan", "Tver"]


def members(audience: Audience) -> set[int]:
    return set(Membership.objects.filter(audience=audience).values_list("customer_id", flat=True))


@pytest.mark.django_db(transaction=True)
def test_four_workers_run_every_import_and_segment_job_exactly_once():
    rnd = random.Random(20261206)
    Customer.objects.bulk_create(
        [Customer(sc_id=i, city=CITIES[i % 4]) for i in range(1, CUSTOMERS + 1)],
        batch_size=5000,
    )
    with connection.cursor() as cur:
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('customers_customer', 'sc_id'), %s)", [CUSTOMERS]
        )
    city_of = {i: CITIES[i % 4] for i in range(1, CUSTOMERS + 1)}
    expected: dict[int, set[int]] = {}

    # Four imports, each into its own audience that already has some members.
    imports = []
    for n in range(4):
        audience = audience_services.create_audience(f"Import {n}", actor=ACTOR)
        before = set(rnd.sample(range(1, CUSTOMERS + 1), 500))
        audience_services.add_customers_to_audience(audience, before, actor=ACTOR, kind="ui")
        ids = set(rnd.sample(range(1, CUSTOMERS + 1), 6000))
        data = "\n".join(f"{i};" for i in sorted(ids, key=lambda _: rnd.random())).encode()
        job = import_services.start_import(
            [data],
            f"file-{n}.csv",
            import_services.ImportRequest(mode="single", audience_id=audience.pk, id_type="sc_id"),
            actor=ACTOR,
        )
        imports.append(job)
        expected[audience.pk] = before | ids

    # Four segment jobs: add Moscow and Omsk to one audience (two jobs on the same audience),
    # add Kazan to another, remove Tver from a third.
    shared = audience_services.create_audience("Segments shared", actor=ACTOR)
    kazan = audience_services.create_audience("Segments Kazan", actor=ACTOR)
    pruned = audience_services.create_audience("Segments pruned", actor=ACTOR)
    pruned_before = set(rnd.sample(range(1, CUSTOMERS + 1), 8000))
    audience_services.add_customers_to_audience(pruned, pruned_before, actor=ACTOR, kind="ui")

    def city_segment(city: str):  # type: ignore[no-untyped-def]
        rule = {"rules": [{"field": "customer.city", "operator": "eq", "value": city}]}
        return segment_services.create_segment(city, rule, actor=ACTOR, refresh=False)

    def of(city: str) -> set[int]:
        return {i for i, c in city_of.items() if c == city}

    plan = [
        (city_segment("Moscow"), "add", shared),
        (city_segment("Omsk"), "add", shared),
        (city_segment("Kazan"), "add", kazan),
        (city_segment("Tver"), "remove", pruned),
    ]
    segment_jobs = [
        segment_services.include_in_audience(seg, action=action, audience_id=aud.pk, actor=ACTOR)
        for seg, action, aud in plan
    ]
    expected[shared.pk] = of("Moscow") | of("Omsk")
    expected[kazan.pk] = of("Kazan")
    expected[pruned.pk] = pruned_before - of("Tver")

    data_dir = Path(settings.TAGBASE_IMPORT_DIR).parent
    # A normal lease (no takeovers expected); a fast sweep so that every worker looks for work.
    workers = [start_worker(data_dir, TAGBASE_JOB_LEASE_SECONDS="60") for _ in range(WORKERS)]
    owners: set[str] = set()  # the worker processes (host:pid) seen holding a job

    def all_finished() -> bool:
        for model in (ImportJob, SegmentJob):
            held = model.objects.exclude(lease_owner="").values_list("lease_owner", flat=True)
            owners.update(owner.rsplit(":", 1)[0] for owner in held)
        return all(ImportJob.objects.get(pk=j.pk).is_terminal for j in imports) and all(
            SegmentJob.objects.get(pk=j.pk).is_finished for j in segment_jobs
        )

    try:
        done = wait_for(all_finished, timeout=240, step=0.05)
    finally:
        logs = [stop(w) for w in workers]
    alive_at_end = [w.returncode for w in workers]
    assert done, "jobs still unfinished after 240 s:\n" + "\n".join(log[-1500:] for log in logs)
    assert all(code is not None for code in alive_at_end)

    for job in imports:
        job.refresh_from_db()
        assert job.status == "succeeded", (job.pk, job.status, job.error_message)
        assert Operation.objects.filter(source_ref=f"import:{job.pk}").count() == 1
    for job in segment_jobs:
        job.refresh_from_db()
        assert job.status == JobStatus.SUCCEEDED, (job.pk, job.status, job.error)
        assert job.operation_id is not None
    segment_ops = Operation.objects.filter(kind=OperationKind.SEGMENT)
    assert sorted(segment_ops.values_list("pk", flat=True)) == sorted(
        j.operation_id for j in segment_jobs
    )
    assert Operation.objects.filter(audience=shared, kind=OperationKind.SEGMENT).count() == 2

    for audience_id, want in expected.items():
        audience = Audience.objects.get(pk=audience_id)
        assert members(audience) == want, audience.name
        assert audience.member_count == len(want), audience.name
    attempts = [j.attempts for j in imports] + [j.attempts for j in segment_jobs]
    print(f"{WORKERS} workers, 8 jobs; claims per job: {attempts}; holders seen: {len(owners)}")
    # The jobs were shared out: more than one worker held one at some point.
    assert len(owners) >= 2, owners
