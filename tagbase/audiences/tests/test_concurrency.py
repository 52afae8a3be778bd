"""Concurrent writers on one audience: no duplicates, no errors, exact counts, and a final set
equal to replaying the operations in the order the database serialised them."""

from __future__ import annotations

import random
import threading

import pytest
from django.db import connection, connections

from tagbase.audiences import services
from tagbase.audiences.models import Membership, Operation
from tagbase.testing import make_customers, system_actor

ACTOR = system_actor()


def _needs_shared_database() -> None:
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip(
            "SQLite concurrency needs a file database: run through `make test` "
            "(scripts/run_tests.py sets TAGBASE_TEST_DATABASE_NAME to a file)"
        )


def _writer(seed: int, audience_id: int, ids: list[int], log: list, errors: list) -> None:
    rnd = random.Random(seed)
    try:
        for _ in range(15):
            batch = rnd.sample(ids, rnd.randint(1, 25))
            if rnd.random() < 0.6:
                op = services.add_customers_to_audience(audience_id, batch, actor=ACTOR, kind="api")
            else:
                op = services.remove_customers_from_audience(
                    audience_id, batch, actor=ACTOR, kind="api"
                )
            log.append((op.pk, op.action, set(batch), op.added, op.removed))
    except Exception as exc:  # collected and asserted on below
        errors.append(repr(exc))
    finally:
        connections.close_all()


@pytest.mark.django_db(transaction=True)
def test_many_writers_on_one_audience_give_the_serialised_result():
    _needs_shared_database()
    ids = make_customers(60)
    audience = services.create_audience("Contended", actor=ACTOR)
    log: list = []
    errors: list = []
    threads = [
        threading.Thread(target=_writer, args=(seed, audience.pk, ids, log, errors))
        for seed in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert len(log) == 6 * 15

    # Replay in operation-id order: ids are assigned after the audience lock is taken, so
    # their order is the order in which the database serialised the writers.
    oracle: set[int] = set()
    for _, action, batch, added, removed in sorted(log, key=lambda entry: entry[0]):
        if action == "add":
            assert added == len(batch - oracle)
            oracle |= batch
        else:
            assert removed == len(batch & oracle)
            oracle -= batch
    actual = set(Membership.objects.filter(audience=audience).values_list("customer_id", flat=True))
    assert actual == oracle
    audience.refresh_from_db()
    assert audience.member_count == len(oracle)
    assert Operation.objects.filter(audience=audience).count() == 6 * 15


@pytest.mark.django_db(transaction=True)
def test_writers_on_different_audiences_do_not_disturb_each_other():
    _needs_shared_database()
    ids = make_customers(40)
    audiences = [services.create_audience(f"A{i}", actor=ACTOR) for i in range(4)]
    errors: list = []

    def fill(audience_id: int) -> None:
        try:
            for start in range(0, 40, 5):
                services.add_customers_to_audience(
                    audience_id, ids[start : start + 5], actor=ACTOR, kind="api"
                )
        except Exception as exc:
            errors.append(repr(exc))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=fill, args=(a.pk,)) for a in audiences]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    for a in audiences:
        a.refresh_from_db()
        assert a.member_count == 40
