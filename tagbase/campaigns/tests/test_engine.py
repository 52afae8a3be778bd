"""The engine end to end: the Goal's chain driven by real receipt loads, waits on a fake clock,
re-entry, statuses, branching and merging, and a crash in the middle of a batch."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from tagbase.audiences.models import Membership, Operation, OperationKind
from tagbase.audiences.services import create_audience, undo_operation
from tagbase.campaigns import engine, services
from tagbase.campaigns.actions.audience import AudienceAction
from tagbase.campaigns.models import (
    Batch,
    CampaignStatus,
    Entry,
    OutboxMessage,
    OutboxStatus,
    Passage,
    StepRun,
    Token,
)
from tagbase.campaigns.tasks import tick
from tagbase.campaigns.tests.builders import (
    ACTOR,
    chain,
    edge,
    graph,
    make_campaign,
    node,
    welcome_vips,
)
from tagbase.customers.services import load_receipts
from tagbase.testing import make_customer

pytestmark = pytest.mark.django_db
IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


def _members(audience_id: int) -> set[int]:
    return set(
        Membership.objects.filter(audience_id=audience_id).values_list("customer_id", flat=True)
    )


def _steps(campaign_id: int) -> dict[str, tuple[int, dict[str, int]]]:
    """node -> (customers in, customers out per port), summed over every run."""
    out: dict[str, tuple[int, dict[str, int]]] = {}
    for run in StepRun.objects.filter(campaign_id=campaign_id):
        count_in, ports = out.get(run.node, (0, {}))
        for port, n in run.counts_out.items():
            ports[port] = ports.get(port, 0) + n
        out[run.node] = (count_in + run.count_in, ports)
    return out


def _receipt(customer, number: str, amount: str) -> dict[str, object]:
    return {
        "sc_id": customer.pk,
        "number": number,
        "date": timezone.now().isoformat(),
        "amount": amount,
    }


@override_settings(TASKS=IMMEDIATE)
def test_the_goal_chain_moves_real_customers_from_receipt_loads(
    django_capture_on_commit_callbacks,
):
    rich = make_customer(first_name="Anna", email="anna@example.com")
    poor = make_customer(first_name="Boris", email="boris@example.com")
    vip = create_audience("VIP", actor=ACTOR)
    prospects = create_audience("Prospects", actor=ACTOR)
    from tagbase.audiences.services import add_customers_to_audience

    add_customers_to_audience(prospects, [rich.pk, poor.pk], actor=ACTOR, kind="api")
    campaign = make_campaign(
        welcome_vips(vip.pk, prospects.pk), name="Welcome VIPs", reentry_days=365
    )

    with django_capture_on_commit_callbacks(execute=True):
        report = load_receipts(
            [_receipt(rich, "R1", "12000.00"), _receipt(poor, "P1", "300.00")], actor=ACTOR
        )
    assert report.created == 2

    # Rich went the positive way at once: added to VIP, e-mailed.
    assert _members(vip.pk) == {rich.pk}
    op = Operation.objects.get(audience=vip, kind=OperationKind.CAMPAIGN)
    assert op.source_ref == f"campaign {campaign.pk} step vip" and op.added == 1
    [message] = OutboxMessage.objects.all()
    assert (message.to, message.subject, message.status) == (
        "anna@example.com", "Welcome, Anna", OutboxStatus.SENT,
    )  # fmt: skip
    assert mail.outbox[-1].body == "Dear Anna, you are a VIP now."
    # Poor waits 7 days before leaving Prospects.
    [token] = Token.objects.all()
    assert (token.customer_id, token.node) == (poor.pk, "week")
    assert _members(prospects.pk) == {rich.pk, poor.pk}

    later = timezone.now() + timedelta(days=6)
    assert engine.run_due(campaign.pk, now=later) == 0
    assert _members(prospects.pk) == {rich.pk, poor.pk}
    later = timezone.now() + timedelta(days=7, minutes=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert tick(now=later)["queued"] == [campaign.pk]
    assert _members(prospects.pk) == {rich.pk}
    assert not Token.objects.exists()

    assert _steps(campaign.pk) == {
        "receipt": (2, {"out": 2}),
        "big": (2, {"positive": 1, "negative": 1}),
        "vip": (1, {"out": 1}),
        "mail": (1, {"out": 1, "no_contact": 0}),
        "week": (1, {"out": 1}),
        "drop": (1, {"out": 1}),
    }
    removal = Operation.objects.get(audience=prospects, kind=OperationKind.CAMPAIGN)
    assert removal.removed == 1 and removal.source_ref == f"campaign {campaign.pk} step drop"
    undo_operation(removal, actor=ACTOR)
    assert _members(prospects.pk) == {rich.pk, poor.pk}

    # Re-entry: 365 days. A new receipt the same year lets no one in again.
    with django_capture_on_commit_callbacks(execute=True):
        load_receipts([_receipt(rich, "R2", "50.00")], actor=ACTOR)
    last = Batch.objects.first()
    assert last is not None and (last.requested, last.entered) == (1, 0)
    assert Entry.objects.filter(campaign=campaign).count() == 2


def test_reentry_is_enforced_per_customer():
    a, b = make_customer(), make_customer()
    g = chain(node("t", "customer_registered"), node("w", "wait", amount=1, unit="days"))
    never = make_campaign(g, reentry_days=None)
    yearly = make_campaign(g, reentry_days=365)
    anytime = make_campaign(g, reentry_days=0)
    now = timezone.now()
    for campaign in (never, yearly, anytime):
        assert engine.enter(campaign.pk, [a.pk], now=now).entered == 1  # type: ignore[union-attr]
    soon, much_later = now + timedelta(days=10), now + timedelta(days=366)

    def entered(campaign, at):  # type: ignore[no-untyped-def]
        return engine.enter(campaign.pk, [a.pk, b.pk], now=at).entered

    assert (entered(never, soon), entered(never, much_later)) == (1, 0)  # only b, once
    assert (entered(yearly, soon), entered(yearly, much_later)) == (1, 1)  # b; then a again
    assert (entered(anytime, soon), entered(anytime, much_later)) == (2, 2)


def test_inactive_and_suspended_campaigns_never_run():
    customer = make_customer()
    vip = create_audience("VIP", actor=ACTOR)
    g = chain(
        node("t", "customer_registered"),
        node("w", "wait", amount=1, unit="hours"),
        node("add", "audience", action="add", audience=vip.pk),
    )
    inactive = make_campaign(g, active=False)
    assert inactive.status == CampaignStatus.INACTIVE
    assert engine.enter(inactive.pk, [customer.pk]) is None
    assert not Entry.objects.exists()

    campaign = make_campaign(g)
    now = timezone.now()
    engine.enter(campaign.pk, [customer.pk], now=now)
    services.suspend_campaign(campaign, actor=ACTOR)
    later = now + timedelta(hours=2)
    assert engine.run_due(campaign.pk, now=later) == 0
    assert engine.enter(campaign.pk, [customer.pk], now=later) is None
    assert tick(now=later)["queued"] == []
    assert _members(vip.pk) == set() and Token.objects.count() == 1  # still waiting

    services.activate_campaign(campaign, actor=ACTOR)  # resume: the waiting customer goes on
    assert engine.run_due(campaign.pk, now=later) == 2  # the wait, then the add
    assert _members(vip.pk) == {customer.pk}

    engine.enter(campaign.pk, [make_customer().pk], now=later)
    services.deactivate_campaign(campaign, actor=ACTOR)  # stop: waiting customers leave
    assert not Token.objects.exists()
    assert engine.run_due(campaign.pk, now=later + timedelta(days=1)) == 0


def test_branches_merge_and_each_customer_runs_the_merged_step_once():
    ids = [make_customer(city=city).pk for city in ("Moscow", "Omsk", "Moscow")]
    target = create_audience("Everyone", actor=ACTOR)
    moscow = {
        "op": "and",
        "rules": [{"field": "customer.city", "operator": "eq", "value": "moscow"}],
    }
    g = graph(
        node("t", "customer_registered"),
        node("f", "filter", rules=moscow),
        node("w", "wait", amount=5, unit="minutes"),
        node("add", "audience", action="add", audience=target.pk),
        edge("t", "f"),
        edge("f", "w", "positive"),
        edge("f", "add", "negative"),
        edge("w", "add"),
    )
    campaign = make_campaign(g)
    now = timezone.now()
    engine.enter(campaign.pk, ids, now=now)
    assert engine.run_due(campaign.pk, now=now) == 2  # filter, then add for Omsk
    assert _members(target.pk) == {ids[1]}
    assert engine.run_due(campaign.pk, now=now + timedelta(minutes=5)) == 2  # wait, add
    assert _members(target.pk) == set(ids)
    assert _steps(campaign.pk)["add"] == (3, {"out": 3})
    assert Operation.objects.filter(audience=target).count() == 2


def test_a_crash_inside_a_step_leaves_nothing_done_and_the_step_runs_once_later(monkeypatch):
    ids = [make_customer().pk for _ in range(4)]
    first = create_audience("First", actor=ACTOR)
    second = create_audience("Second", actor=ACTOR)
    g = chain(
        node("t", "customer_registered"),
        node("one", "audience", action="add", audience=first.pk),
        node("two", "audience", action="add", audience=second.pk),
    )
    campaign = make_campaign(g)
    now = timezone.now()
    engine.enter(campaign.pk, ids, now=now)

    real = AudienceAction.execute.__func__  # type: ignore[attr-defined]

    def crash_after_writing(cls, batch_ids, ctx):  # type: ignore[no-untyped-def]
        ports = real(cls, batch_ids, ctx)  # the memberships are written…
        if ctx.node == "two":
            raise RuntimeError("worker killed")  # …then the process dies before the commit
        return ports

    monkeypatch.setattr(AudienceAction, "execute", classmethod(crash_after_writing))
    with pytest.raises(RuntimeError):
        engine.run_due(campaign.pk, now=now)
    # Step one committed; step two left nothing: no members, no operation, tokens still there.
    assert _members(first.pk) == set(ids) and _members(second.pk) == set()
    assert not Operation.objects.filter(audience=second).exists()
    assert set(Token.objects.values_list("node", flat=True)) == {"two"}

    monkeypatch.undo()
    assert engine.run_due(campaign.pk, now=now) == 1  # only step two; step one is not redone
    assert _members(second.pk) == set(ids)
    assert Operation.objects.filter(audience=first).count() == 1
    assert Operation.objects.filter(audience=second).count() == 1
    assert {r.node: r.count_in for r in StepRun.objects.filter(campaign=campaign)} == {
        "t": 4, "one": 4, "two": 4,
    }  # fmt: skip
    assert StepRun.objects.filter(campaign=campaign).count() == 3


def test_a_crash_between_steps_resumes_where_it_stopped(monkeypatch):
    ids = [make_customer().pk for _ in range(3)]
    first = create_audience("First", actor=ACTOR)
    second = create_audience("Second", actor=ACTOR)
    campaign = make_campaign(
        chain(
            node("t", "customer_registered"),
            node("one", "audience", action="add", audience=first.pk),
            node("two", "audience", action="remove", audience=first.pk),
            node("three", "audience", action="add", audience=second.pk),
        )
    )
    now = timezone.now()
    engine.enter(campaign.pk, ids, now=now)
    real_run_step = engine.run_step
    calls = []

    def dies_after_one_step(*args, **kwargs):  # type: ignore[no-untyped-def]
        if calls:
            raise KeyboardInterrupt("killed between steps")
        calls.append(args)
        return real_run_step(*args, **kwargs)

    monkeypatch.setattr(engine, "run_step", dies_after_one_step)
    with pytest.raises(KeyboardInterrupt):
        engine.run_due(campaign.pk, now=now)
    monkeypatch.undo()
    assert engine.run_due(campaign.pk, now=now) == 2  # two and three; one is not redone
    assert _members(first.pk) == set() and _members(second.pk) == set(ids)
    kinds = Operation.objects.filter(kind=OperationKind.CAMPAIGN).values_list("action", flat=True)
    assert sorted(kinds) == ["add", "add", "remove"]


def test_a_step_takes_at_most_the_step_size_and_the_rest_follow(settings):
    settings.TAGBASE_CAMPAIGN_STEP_SIZE = 2
    ids = [make_customer().pk for _ in range(5)]
    target = create_audience("All", actor=ACTOR)
    campaign = make_campaign(
        chain(
            node("t", "customer_registered"),
            node("add", "audience", action="add", audience=target.pk),
        )
    )
    now = timezone.now()
    engine.enter(campaign.pk, ids, now=now)
    assert engine.run_due(campaign.pk, now=now) == 3
    assert _members(target.pk) == set(ids)
    assert sorted(r.count_in for r in StepRun.objects.filter(node="add")) == [1, 2, 2]


def test_a_refused_action_is_recorded_and_its_customers_stop_there():
    customer = make_customer()
    gone = create_audience("Gone", actor=ACTOR)
    campaign = make_campaign(
        chain(
            node("t", "customer_registered"),
            node("add", "audience", action="add", audience=gone.pk),
        )
    )
    from tagbase.audiences.services import delete_audience

    delete_audience(gone, actor=ACTOR)
    now = timezone.now()
    engine.enter(campaign.pk, [customer.pk], now=now)
    assert engine.run_due(campaign.pk, now=now) == 1
    run = StepRun.objects.get(node="add")
    assert run.error == f"audience {gone.pk} no longer exists" and run.counts_out == {}
    assert not Token.objects.exists()


def test_saving_a_new_version_drops_customers_waiting_at_a_removed_node():
    customer = make_customer()
    g = chain(node("t", "customer_registered"), node("w", "wait", amount=1, unit="minutes"))
    campaign = make_campaign(g)
    now = timezone.now()
    engine.enter(campaign.pk, [customer.pk], now=now)
    g2 = chain(node("t", "customer_registered"), node("w2", "wait", amount=2, unit="minutes"))
    campaign = services.update_campaign(campaign, actor=ACTOR, graph=g2)
    assert campaign.version == 2 and campaign.versions.count() == 2
    engine.run_due(campaign.pk, now=now + timedelta(minutes=1))
    run = StepRun.objects.get(node="w")
    assert run.kind == "removed" and "not in version 2" in run.error
    assert not Token.objects.exists()


def test_entering_counts_unknown_ids_as_requested_and_lets_in_only_customers():
    known = [make_customer().pk for _ in range(3)]
    g = chain(node("t", "customer_registered"), node("w", "wait", amount=1, unit="days"))
    campaign = make_campaign(g, reentry_days=None)
    missing = max(known) + 1000
    batch = engine.enter(campaign.pk, [*known, known[0], missing], now=timezone.now())
    assert batch is not None and (batch.requested, batch.entered) == (4, 3)
    assert batch.requested == Batch.objects.get(pk=batch.pk).requested  # stored, not only shown
    assert sorted(Token.objects.values_list("customer_id", flat=True)) == known
    [trigger_run] = StepRun.objects.filter(node="t")
    assert (trigger_run.count_in, trigger_run.counts_out) == (4, {"out": 3})


def test_entering_a_selection_never_loads_the_customers(monkeypatch):
    """A scheduled trigger's customers are SQL: no list of ids is made, the entries are one
    INSERT … SELECT, and entering 3 or 60 customers takes the same statements."""
    from tagbase.campaigns import bulk
    from tagbase.campaigns.triggers import customers_of
    from tagbase.customers.models import Customer

    def no_lists(ids):  # type: ignore[no-untyped-def]
        raise AssertionError("a selection was turned into a list of ids")

    monkeypatch.setattr(bulk, "selection_of", no_lists)
    g = chain(node("t", "customer_registered"), node("w", "wait", amount=1, unit="days"))
    counts = []
    for size in (3, 60):
        Customer.objects.all().delete()
        ids = {make_customer().pk for _ in range(size)}
        campaign = make_campaign(g, reentry_days=None)
        with CaptureQueriesContext(connection) as captured:
            batch = engine.enter(campaign.pk, customers_of(Customer.objects.all()))
        assert batch is not None and batch.entered == size
        tokens = Token.objects.filter(campaign=campaign).values_list("customer_id", flat=True)
        assert set(tokens) == ids
        statements = [q["sql"] for q in captured.captured_queries]
        assert [q for q in statements if "INTO campaigns_entry" in q and "SELECT" in q]
        counts.append(len(statements))
    assert counts[0] == counts[1]


def test_a_customer_arriving_by_two_branches_runs_the_merged_step_once(settings):
    """Both branches leave a token at the merge node in the same batch; a step takes all of a
    customer's tokens there, even when the step size splits the batch."""
    settings.TAGBASE_CAMPAIGN_STEP_SIZE = 1
    ids = [make_customer().pk for _ in range(3)]
    left = create_audience("Left", actor=ACTOR)
    right = create_audience("Right", actor=ACTOR)
    merged = create_audience("Merged", actor=ACTOR)
    g = graph(
        node("t", "customer_registered"),
        node("l", "audience", action="add", audience=left.pk),
        node("r", "audience", action="add", audience=right.pk),
        node("m", "audience", action="add", audience=merged.pk),
        edge("t", "l"),
        edge("t", "r"),
        edge("l", "m"),
        edge("r", "m"),
    )
    campaign = make_campaign(g)
    now = timezone.now()
    engine.enter(campaign.pk, ids, now=now)
    engine.run_due(campaign.pk, now=now)
    assert _members(merged.pk) == set(ids)
    runs = StepRun.objects.filter(campaign=campaign, node="m")
    assert sorted(r.count_in for r in runs) == [1, 1, 1]
    passages = Passage.objects.filter(step__node="m").values_list("customer_id", flat=True)
    assert sorted(passages) == sorted(ids)
    assert not Token.objects.exists()


def test_passages_record_the_port_of_every_customer_of_a_big_step(settings):
    """Tokens and passages of a step are written set-based, per port: every customer once, by
    the port the action chose, stopped customers with an empty port."""
    settings.TAGBASE_CAMPAIGN_STEP_SIZE = 500
    ids = [make_customer(city="Moscow" if i % 3 == 0 else "Omsk").pk for i in range(1200)]
    moscow = {
        "op": "and",
        "rules": [{"field": "customer.city", "operator": "eq", "value": "moscow"}],
    }
    g = graph(
        node("t", "customer_registered"),
        node("f", "filter", rules=moscow),
        node("cap", "limit", max=300),
        node("w", "wait", amount=1, unit="days"),
        edge("t", "f"),
        edge("f", "cap", "positive"),
        edge("cap", "w"),
    )
    campaign = make_campaign(g)
    now = timezone.now()
    engine.enter(campaign.pk, ids, now=now)
    engine.run_due(campaign.pk, now=now)
    ports = dict(Passage.objects.filter(step__node="f").values_list("customer_id", "port"))
    assert ports == {i: "positive" if n % 3 == 0 else "negative" for n, i in enumerate(ids)}
    muscovites = ids[::3]
    cap = dict(Passage.objects.filter(step__node="cap").values_list("customer_id", "port"))
    assert cap == {i: "out" if n < 300 else "over" for n, i in enumerate(muscovites)}
    waiting = Token.objects.filter(campaign=campaign, node="w")
    assert sorted(waiting.values_list("customer_id", flat=True)) == muscovites[:300]
    assert {t.due_at for t in waiting} == {now + timedelta(days=1)}
    assert [r.count_in for r in StepRun.objects.filter(node="f").order_by("id")] == [500, 500, 200]
