"""Kill real worker processes while they include a segment in an audience: the change happens
exactly once, as one operation, and equals what the rule selects.

Each round creates a job through the service (enqueued as a real task), starts a
`tagbase worker`, SIGKILLs it after a random delay — before it claims the job or inside the
job's one transaction — one to three times, then lets a last worker finish.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from django.conf import settings

from tagbase.accounts.actors import Actor
from tagbase.audiences import services as audience_services
from tagbase.audiences.models import Audience, Membership, Operation, OperationKind
from tagbase.customers.models import Customer
from tagbase.segments import services
from tagbase.segments.models import JobStatus, SegmentJob
from tests.faults.workers import kill, start_worker, stop, wait_for

ROUNDS = int(os.environ.get("TAGBASE_FAULT_ROUNDS", "3"))
CUSTOMERS = 30_000
ACTOR = Actor.system("fault-test")
CITIES = ["Moscow", "Omsk", "Kazan"]


@pytest.mark.django_db(transaction=True)
def test_killed_workers_never_lose_or_double_a_segment_job():
    rnd = random.Random(int(os.environ.get("TAGBASE_FAULT_SEED", "20261205")))
    Customer.objects.bulk_create(
        [Customer(city=CITIES[i % 3], first_name=f"F{i}") for i in range(CUSTOMERS)],
        batch_size=5000,
    )
    city_of = dict(Customer.objects.values_list("sc_id", "city"))
    seen_at_kill: list[str] = []
    for round_no in range(ROUNDS):
        city = CITIES[round_no % 3]
        action = "add" if round_no % 2 == 0 else "remove"
        rule = {"rules": [{"field": "customer.city", "operator": "eq", "value": city}]}
        segment = services.create_segment(f"Fault {round_no}", rule, actor=ACTOR, refresh=False)
        audience = audience_services.create_audience(f"Fault {round_no}", actor=ACTOR)
        before = set(rnd.sample(sorted(city_of), 5000))
        audience_services.add_customers_to_audience(audience, before, actor=ACTOR, kind="ui")
        job = services.include_in_audience(
            segment, action=action, audience_id=audience.pk, actor=ACTOR
        )
        for _ in range(rnd.randint(1, 3)):
            worker = start_worker(Path(settings.TAGBASE_IMPORT_DIR).parent)
            if rnd.random() < 0.3:
                time.sleep(rnd.uniform(0.3, 1.0))  # often before the worker has started
            else:  # inside the job: it is claimed ("running") and its transaction is under way
                wait_for(
                    lambda: SegmentJob.objects.get(pk=job.pk).status != JobStatus.QUEUED,
                    timeout=20,
                    step=0.002,
                )
                time.sleep(rnd.uniform(0, 0.08))
            kill(worker)
            seen_at_kill.append(SegmentJob.objects.get(pk=job.pk).status)
        worker = start_worker(Path(settings.TAGBASE_IMPORT_DIR).parent)
        finished = wait_for(
            lambda: SegmentJob.objects.get(pk=job.pk).is_finished,
            timeout=120,
        )
        log = stop(worker)
        job.refresh_from_db()
        assert finished, f"round {round_no}: job stuck in {job.status}\n{log[-2000:]}"
        assert job.status == JobStatus.SUCCEEDED, (job.status, job.error)
        matching = {i for i, c in city_of.items() if c == city}
        expected = before | matching if action == "add" else before - matching
        members = set(
            Membership.objects.filter(audience=audience).values_list("customer_id", flat=True)
        )
        assert members == expected
        assert Audience.objects.get(pk=audience.pk).member_count == len(expected)
        ops = Operation.objects.filter(audience=audience, kind=OperationKind.SEGMENT)
        assert list(ops.values_list("pk", flat=True)) == [job.operation_id]
    # "running" = killed while holding the job (inside its transaction or just before it).
    print(f"job status seen at each kill: {seen_at_kill}")
