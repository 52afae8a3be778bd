"""Kill real worker processes at random points of real imports: nothing lost, nothing twice.

Each round uploads a file through the service (enqueued as a real task), starts a
`tagbase worker`, SIGKILLs it after a random delay — in the parse, resolve, apply or report
stage — a random number of times, then lets a last worker finish. The final membership set
must equal an oracle computed in Python, the counters must add up, the audience count must be
exact, the job must be applied by exactly one operation and no job may stay unfinished.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tagbase.accounts.actors import Actor
from tagbase.audiences import services as audience_services
from tagbase.audiences.models import Audience, Membership, Operation
from tagbase.customers.models import Customer
from tagbase.imports import services
from tagbase.imports.models import ImportJob, ImportRow
from tagbase.imports.tests.helpers import identity_holds
from tests.faults.workers import kill, start_worker, stop, wait_for

ROUNDS = int(os.environ.get("TAGBASE_FAULT_ROUNDS", "6"))
KNOWN = 4000
ACTOR = Actor.system("fault-test")


def make_file(rnd: random.Random) -> tuple[bytes, set[int], dict[str, int]]:
    lines, seen, counts = [], set(), {"invalid": 0, "duplicate_in_file": 0, "not_found": 0}
    for _ in range(12_000):
        roll = rnd.random()
        if roll < 0.05:
            lines.append("12x")
            counts["invalid"] += 1
            continue
        value = rnd.randint(1, KNOWN) if roll < 0.9 else rnd.randint(KNOWN + 1, KNOWN + 500)
        lines.append(f"{value};")
        if value in seen:
            counts["duplicate_in_file"] += 1
        elif value > KNOWN:
            counts["not_found"] += 1
        seen.add(value)
    return "\n".join(lines).encode(), {v for v in seen if v <= KNOWN}, counts


def _kill_at_a_random_point(rnd: random.Random, worker, job_id: int) -> str:  # type: ignore[no-untyped-def]
    """SIGKILL the worker in a randomly chosen stage (or after a random delay); return the
    stage the job was in."""
    target = rnd.choice(["parse", "resolve", "apply", "report", "delay"])
    deadline = time.monotonic() + 20
    stage = ImportJob.objects.get(pk=job_id).stage
    if target == "delay":
        time.sleep(rnd.uniform(0.8, 3.0))  # the worker needs ~0.7 s to start Django
    else:
        while time.monotonic() < deadline and stage not in {target, "done"}:
            time.sleep(0.005)
            stage = ImportJob.objects.get(pk=job_id).stage
        time.sleep(rnd.uniform(0, 0.05))
    stage = ImportJob.objects.get(pk=job_id).stage
    kill(worker)
    return stage


@pytest.mark.django_db(transaction=True)
def test_killed_workers_never_lose_or_double_an_import(tmp_path):
    Customer.objects.bulk_create([Customer(sc_id=i) for i in range(1, KNOWN + 1)])
    if connection.vendor == "postgresql":
        with connection.cursor() as cur:
            cur.execute(
                "SELECT setval(pg_get_serial_sequence('customers_customer', 'sc_id'), %s)",
                [KNOWN],
            )
    rnd = random.Random(int(os.environ.get("TAGBASE_FAULT_SEED", "20261129")))
    stages_hit: set[str] = set()
    for round_no in range(ROUNDS):
        data, known_ids, counts = make_file(rnd)
        audience = audience_services.create_audience(f"Fault {round_no}", actor=ACTOR)
        before = set(rnd.sample(range(1, KNOWN + 1), 300))
        audience_services.add_customers_to_audience(audience, before, actor=ACTOR, kind="ui")
        job = services.start_import(
            [data],
            "fault.csv",
            services.ImportRequest(mode="single", audience_id=audience.pk, id_type="sc_id"),
            actor=ACTOR,
        )
        for _ in range(rnd.randint(1, 3)):
            worker = start_worker(Path(settings.TAGBASE_IMPORT_DIR).parent)
            stages_hit.add(_kill_at_a_random_point(rnd, worker, job.pk))
        worker = start_worker(Path(settings.TAGBASE_IMPORT_DIR).parent)
        finished = wait_for(lambda: ImportJob.objects.get(pk=job.pk).is_terminal, timeout=120)
        log = stop(worker)
        job.refresh_from_db()
        assert finished, f"round {round_no}: job stuck in {job.status}/{job.stage}\n{log[-2000:]}"
        assert job.status == "succeeded_with_rejections", (job.status, job.error_message)
        assert identity_holds(job)
        assert (job.invalid, job.duplicate_in_file, job.not_found) == (
            counts["invalid"],
            counts["duplicate_in_file"],
            counts["not_found"],
        )
        assert job.added == len(known_ids - before)
        assert job.already_member == len(known_ids & before)
        members = set(
            Membership.objects.filter(audience=audience).values_list("customer_id", flat=True)
        )
        assert members == before | known_ids
        assert Audience.objects.get(pk=audience.pk).member_count == len(members)
        assert Operation.objects.filter(source_ref=f"import:{job.pk}").count() == 1
        assert not ImportRow.objects.filter(job_id=job.pk).exists()
    assert not ImportJob.objects.exclude(
        status__in=["succeeded", "succeeded_with_rejections"]
    ).exists()
    print(f"stages in which a worker was killed: {sorted(stages_hit)}")
    assert settings.TAGBASE_JOB_LEASE_SECONDS  # settings loaded in this process too
