"""Imports running at the same time: into one audience they give the exact union; into
different audiences they proceed side by side. Real threads, real transactions."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from tagbase.accounts.actors import Actor
from tagbase.audiences.models import Audience, Membership, Operation
from tagbase.customers.models import Customer
from tagbase.imports import pipeline, services
from tagbase.imports.models import ImportJob
from tagbase.imports.tests.helpers import identity_holds

ACTOR = Actor.system("test")


def _shared_db() -> None:
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("needs a file database: run through `make test`")


def _run_all(jobs: list[int]) -> list[str]:
    errors: list[str] = []

    def run(job_id: int) -> None:
        try:
            pipeline.run_import_job(job_id, owner=f"t{job_id}")
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(j,)) for j in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    return errors


def _start(data: bytes, **request: object) -> int:
    req = services.ImportRequest(id_type="sc_id", **request)  # type: ignore[arg-type]
    return services.start_import([data], "c.csv", req, actor=ACTOR, enqueue=False).pk


def _members(name: str) -> set[int]:
    aud = Audience.objects.get(name=name)
    return set(Membership.objects.filter(audience=aud).values_list("customer_id", flat=True))


@pytest.mark.django_db(transaction=True)
def test_concurrent_imports_into_one_audience_give_the_exact_union(settings):
    _shared_db()
    settings.TAGBASE_IMPORT_BATCH_ROWS = 500
    Customer.objects.bulk_create([Customer(sc_id=i) for i in range(1, 6001)])
    a = "\n".join(str(i) for i in range(1, 4001)).encode()
    b = "\n".join(str(i) for i in range(2001, 6001)).encode()
    jobs = [
        _start(a, mode="single", audience_name="Union"),
        _start(b, mode="single", audience_name="Union"),
    ]
    assert _run_all(jobs) == []
    assert _members("Union") == set(range(1, 6001))
    assert Audience.objects.filter(name="Union").count() == 1
    done = [ImportJob.objects.get(pk=j) for j in jobs]
    assert sum(j.added for j in done) == 6000
    assert sum(j.already_member for j in done) == 2000
    assert all(identity_holds(j) and j.status == "succeeded" for j in done)


@pytest.mark.django_db(transaction=True)
def test_concurrent_imports_into_different_audiences_all_finish_exactly(settings):
    _shared_db()
    settings.TAGBASE_IMPORT_BATCH_ROWS = 500
    Customer.objects.bulk_create([Customer(sc_id=i) for i in range(1, 3001)])
    data = "\n".join(str(i) for i in range(1, 3001)).encode()
    jobs = [_start(data, mode="single", audience_name=f"P{n}") for n in range(4)]
    assert _run_all(jobs) == []
    for n in range(4):
        assert _members(f"P{n}") == set(range(1, 3001))
    assert Operation.objects.filter(kind="import").count() == 4
