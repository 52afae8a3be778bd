"""The database drops every connection mid-import (as a restart does): the job retries from its
checkpoint and finishes exactly; the worker process itself survives."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from tagbase.accounts.actors import Actor
from tagbase.audiences import services as audience_services
from tagbase.audiences.models import Membership, Operation
from tagbase.customers.models import Customer
from tagbase.imports import services
from tagbase.imports.models import ImportJob
from tagbase.imports.tests.helpers import identity_holds
from tests.faults.workers import start_worker, stop, wait_for

ACTOR = Actor.system("fault-test")


def _drop_other_connections() -> int:
    with connection.cursor() as cur:
        cur.execute(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return int(cur.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_an_import_survives_the_database_dropping_all_connections():
    if connection.vendor != "postgresql":
        pytest.skip("dropping server connections is a PostgreSQL scenario")
    Customer.objects.bulk_create([Customer(sc_id=i) for i in range(1, 3001)])
    audience = audience_services.create_audience("Restart", actor=ACTOR)
    data = "\n".join(str(i) for i in range(1, 200_001)).encode()
    job = services.start_import(
        [data],
        "restart.csv",
        services.ImportRequest(mode="single", audience_id=audience.pk, id_type="sc_id"),
        actor=ACTOR,
    )
    worker = start_worker(Path(settings.TAGBASE_IMPORT_DIR).parent, TAGBASE_IMPORT_BATCH_ROWS="200")
    drops = 0
    try:
        assert wait_for(lambda: ImportJob.objects.get(pk=job.pk).checkpoint_line > 0, 30, step=0.01)
        # Keep dropping every connection while the job is still reading the file, until the
        # job has been taken up again (a retry), or 20 s pass.
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            state = ImportJob.objects.get(pk=job.pk)
            if state.attempts >= 2 or state.stage != "parse":
                break
            drops += _drop_other_connections()
            time.sleep(0.05)
        finished = wait_for(lambda: ImportJob.objects.get(pk=job.pk).is_terminal, 120)
        assert worker.poll() is None, "the worker process died with the database connection"
    finally:
        log = stop(worker)
    job.refresh_from_db()
    assert drops > 0
    assert job.attempts >= 2, "the drop did not interrupt the job; nothing was retried"
    assert finished, f"job stuck in {job.status}/{job.stage}\n{log[-3000:]}"
    assert job.status == "succeeded_with_rejections"
    assert (job.added, job.not_found, job.rows_read) == (3000, 197_000, 200_000)
    assert identity_holds(job)
    assert Membership.objects.filter(audience=audience).count() == 3000
    assert Operation.objects.filter(source_ref=f"import:{job.pk}").count() == 1
