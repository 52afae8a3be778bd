"""Kill real worker processes while they run a campaign: no step runs twice for a customer, no
customer is lost, and the audiences end exactly as the rule says.

The campaign: *date has come* → *filter* (city is Moscow) → positive: *add to audience "Added"*
→ *wait until* a moment already past (a wait of zero: the customers go on at once, through a
token) → *remove from audience "Removed"*. Both audiences have members beforehand. The date
comes a moment after activation; a `tagbase worker` then does everything a worker does: its tick
fires the trigger (every customer enters in one transaction) and queues the campaign's run; the
run moves the customers step by step, TAGBASE_CAMPAIGN_STEP_SIZE at a time, each step one
transaction.

Each round SIGKILLs the worker several times at random moments — before the firing, inside it,
between steps or inside a step's transaction (kills are aimed just after a step commits, plus a
random delay of a step's length) — then lets a last worker finish. Checked against an oracle
computed in Python: one passage per customer per node, the port each took, one audience
operation per committed step, memberships, counts, and no token left.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from tagbase.accounts.actors import Actor
from tagbase.audiences import services as audience_services
from tagbase.audiences.models import Audience, Membership, Operation, OperationKind
from tagbase.campaigns import services
from tagbase.campaigns.models import Batch, Entry, Passage, StepRun, Token
from tagbase.customers.models import Customer
from tests.faults.workers import kill, start_worker, stop, wait_for

ACTOR = Actor.system("fault-test")
CITIES = ["Moscow", "Omsk", "Kazan"]
MOSCOW = {"op": "and", "rules": [{"field": "customer.city", "operator": "eq", "value": "moscow"}]}


def _members(audience: Audience) -> set[int]:
    return set(Membership.objects.filter(audience=audience).values_list("customer_id", flat=True))


def _graph(added: int, removed: int, at: str, past: str) -> dict[str, object]:
    def node(node_id: str, kind: str, **params: object) -> dict[str, object]:
        return {"id": node_id, "kind": kind, "params": params}

    return {
        "nodes": [
            node("date", "date", at=at),
            node("big", "filter", rules=MOSCOW),
            node("add", "audience", action="add", audience=added),
            node("wait", "wait_until", at=past),
            node("remove", "audience", action="remove", audience=removed),
        ],
        "edges": [
            {"from": "date", "port": "out", "to": "big"},
            {"from": "big", "port": "positive", "to": "add"},
            {"from": "add", "port": "out", "to": "wait"},
            {"from": "wait", "port": "out", "to": "remove"},
        ],
    }


def _kill_somewhere(rnd: random.Random, worker, campaign_id: int, target: int) -> str:  # type: ignore[no-untyped-def]
    """SIGKILL the worker at a random moment; say where the campaign was."""
    runs = StepRun.objects.filter(campaign_id=campaign_id)
    if rnd.random() < 0.2:
        time.sleep(rnd.uniform(0.3, 2.0))  # often before the worker has started, or the firing
    else:
        # Just after the target-th step (the firing is the first) commits, then up to a step's
        # length more: the kill lands between steps or inside the next step's transaction.
        wait_for(lambda: runs.count() >= target, timeout=30, step=0.002)
        time.sleep(rnd.uniform(0, 0.06))
    kill(worker)
    return (
        f"{runs.count()} step runs, {Token.objects.filter(campaign_id=campaign_id).count()} tokens"
    )


def _run_round(
    rnd: random.Random, round_no: int, customers: dict[int, str], kills: int, workers: int = 1
) -> None:
    """One campaign run with ``kills`` SIGKILLs; ``workers`` run at once (on PostgreSQL they
    race for the campaign's steps, serialised by its row lock)."""
    moscow = {i for i, city in customers.items() if city == "Moscow"}
    added = audience_services.create_audience(f"Added {round_no}", actor=ACTOR)
    removed = audience_services.create_audience(f"Removed {round_no}", actor=ACTOR)
    before_added = set(rnd.sample(sorted(customers), len(customers) // 5))
    before_removed = set(rnd.sample(sorted(customers), len(customers) // 2))
    audience_services.add_customers_to_audience(added, before_added, actor=ACTOR, kind="ui")
    audience_services.add_customers_to_audience(removed, before_removed, actor=ACTOR, kind="ui")

    now = timezone.now()
    graph = _graph(
        added.pk,
        removed.pk,
        at=(now + timedelta(seconds=0.5)).isoformat(),
        past=(now - timedelta(days=1)).isoformat(),
    )
    campaign = services.create_campaign(f"Fault {round_no}", graph, actor=ACTOR, reentry_days=None)
    campaign = services.activate_campaign(campaign, actor=ACTOR)
    data_dir = Path(settings.TAGBASE_IMPORT_DIR).parent
    size = max(len(customers) // 10, 1)
    env = {"TAGBASE_CAMPAIGN_STEP_SIZE": str(size)}
    # The step runs a whole run records: the firing, the filter's steps, then the steps of the
    # three nodes the Muscovites pass. Kills aim at moments spread over all of them.
    total = 1 + -(-len(customers) // size) + 3 * -(-len(moscow) // size)
    targets = sorted(rnd.sample(range(1, total), min(kills, total - 1)))

    where = []
    alive: list = []  # type: ignore[type-arg]
    for target in targets:
        while len(alive) < workers:
            alive.append(start_worker(data_dir, **env))
        victim = alive.pop(rnd.randrange(len(alive)))
        where.append(_kill_somewhere(rnd, victim, campaign.pk, target))
    alive.append(start_worker(data_dir, **env))

    def finished() -> bool:
        return (
            Batch.objects.filter(campaign=campaign).exists()
            and not Token.objects.filter(campaign=campaign).exists()
        )

    done = wait_for(finished, timeout=120, step=0.05)
    log = "".join(stop(w) for w in alive)
    print(f"round {round_no}: killed at {where}")
    assert done, f"round {round_no}: campaign unfinished\n{log[-3000:]}"

    # One firing; every customer entered once.
    [batch] = Batch.objects.filter(campaign=campaign)
    assert (batch.requested, batch.entered) == (len(customers), len(customers))
    assert Entry.objects.filter(campaign=campaign).count() == len(customers)

    # No step twice for a customer, no customer lost: exactly one passage per customer per
    # node, by the port the rule says; every customer finished (no token is left).
    passages = Passage.objects.filter(step__campaign=campaign)
    doubled = passages.values("customer_id", "step__node").annotate(n=Count("id")).filter(n__gt=1)
    assert list(doubled[:5]) == []
    passed = {
        node: dict(passages.filter(step__node=node).values_list("customer_id", "port"))
        for node in ("big", "add", "wait", "remove")
    }
    assert passed["big"] == {i: "positive" if i in moscow else "negative" for i in customers}
    for node in ("add", "wait", "remove"):
        assert passed[node] == dict.fromkeys(moscow, "out"), node

    # The step runs add up to the passages, and none failed.
    runs = StepRun.objects.filter(campaign=campaign)
    assert not runs.exclude(error="").exists()
    [trigger_run] = runs.filter(node="date")
    assert (trigger_run.count_in, trigger_run.counts_out) == (
        len(customers),
        {"out": len(customers)},
    )
    for node, ports in passed.items():
        mine = list(runs.filter(node=node))
        assert sum(r.count_in for r in mine) == len(ports), node
        out: Counter[str] = Counter()
        for r in mine:
            out.update(r.counts_out)
        assert +out == Counter(ports.values()), node

    # One audience operation per committed step, and the memberships the rule says.
    for audience, node, before in (
        (added, "add", before_added),
        (removed, "remove", before_removed),
    ):
        ops = Operation.objects.filter(audience=audience, kind=OperationKind.CAMPAIGN)
        assert ops.count() == runs.filter(node=node).count()
        assert set(ops.values_list("source_ref", flat=True)) == {
            f"campaign {campaign.pk} step {node}"
        }
        assert sum(ops.values_list("requested", flat=True)) == len(moscow)
        if node == "add":
            assert sum(ops.values_list("added", flat=True)) == len(moscow - before)
        else:
            assert sum(ops.values_list("removed", flat=True)) == len(moscow & before)
    assert _members(added) == before_added | moscow
    assert _members(removed) == before_removed - moscow
    for audience in (added, removed):
        audience.refresh_from_db()
        assert audience.member_count == len(_members(audience))


def _customers(n: int) -> dict[int, str]:
    Customer.objects.bulk_create(
        [Customer(city=CITIES[i % 3], first_name=f"F{i}") for i in range(n)], batch_size=5000
    )
    return dict(Customer.objects.values_list("sc_id", "city"))


@pytest.mark.django_db(transaction=True)
def test_killed_workers_never_run_a_campaign_step_twice_or_lose_a_customer():
    rnd = random.Random(int(os.environ.get("TAGBASE_FAULT_SEED", "20261206")))
    _run_round(rnd, 0, _customers(3000), kills=5)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_killed_workers_never_run_a_campaign_step_twice_long():
    rnd = random.Random(int(os.environ.get("TAGBASE_FAULT_SEED", "20261207")))
    customers = _customers(20_000)
    two_at_once = connection.vendor == "postgresql"
    for round_no in range(int(os.environ.get("TAGBASE_FAULT_ROUNDS", "4"))):
        workers = 2 if two_at_once and round_no % 2 else 1
        _run_round(rnd, round_no, customers, kills=rnd.randint(5, 10), workers=workers)
