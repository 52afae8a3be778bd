"""Each action on its own, run as a real step: ids in, ids per port out, its effects."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from tagbase.audiences.models import Membership, Operation, OperationKind
from tagbase.audiences.services import add_customers_to_audience, create_audience
from tagbase.campaigns import engine
from tagbase.campaigns.models import Channel, OutboxMessage, OutboxStatus, StepRun, Token
from tagbase.campaigns.outbox import deliver
from tagbase.campaigns.tests.builders import ACTOR, chain, graph, make_campaign, node
from tagbase.segments.services import create_segment
from tagbase.testing import make_customer

pytestmark = pytest.mark.django_db
MOSCOW = {"op": "and", "rules": [{"field": "customer.city", "operator": "eq", "value": "moscow"}]}
T = node("t", "customer_registered")


def _run(action: dict, ids: list[int], **campaign_kw) -> tuple[dict[str, int], object]:  # type: ignore[type-arg]
    """Enter ``ids`` into trigger → action and run; the action's port counts and campaign."""
    from django.test import TestCase

    campaign = make_campaign(chain(T, action), **campaign_kw)
    now = timezone.now()
    engine.enter(campaign.pk, ids, now=now)
    with TestCase.captureOnCommitCallbacks(execute=True):  # the outbox is delivered on commit
        engine.run_due(campaign.pk, now=now)
    run = StepRun.objects.filter(campaign=campaign, node=action["id"]).first()
    return (run.counts_out if run else {}), campaign


def _ports_of(campaign, node_id: str) -> dict[str, list[int]]:  # type: ignore[no-untyped-def]
    """Who went where: customers waiting at the wait nodes hung off each port."""
    out: dict[str, list[int]] = {}
    for token in Token.objects.filter(campaign=campaign).order_by("customer_id"):
        out.setdefault(token.node, []).append(token.customer_id)
    return out


def _members(audience_id: int) -> set[int]:
    return set(
        Membership.objects.filter(audience_id=audience_id).values_list("customer_id", flat=True)
    )


def test_audience_add_and_remove_are_campaign_operations_naming_the_step():
    a, b = make_customer().pk, make_customer().pk
    audience = create_audience("A", actor=ACTOR)
    add_customers_to_audience(audience, [a], actor=ACTOR, kind="api")
    counts, campaign = _run(node("add", "audience", action="add", audience=audience.pk), [a, b])
    assert counts == {"out": 2} and _members(audience.pk) == {a, b}
    op = Operation.objects.get(kind=OperationKind.CAMPAIGN)
    assert (op.added, op.already_member, op.source_ref, op.actor_label) == (
        1, 1, f"campaign {campaign.pk} step add", f"campaign:{campaign.pk}",
    )  # fmt: skip
    counts, _ = _run(node("rm", "audience", action="remove", audience=audience.pk), [b])
    assert counts == {"out": 1} and _members(audience.pk) == {a}


def _split_graph(action: dict, ports: tuple[str, ...]) -> dict:  # type: ignore[type-arg]
    waits = [node(f"w_{p}", "wait", amount=1, unit="days") for p in ports]
    from tagbase.campaigns.tests.builders import edge

    return graph(
        T, action, *waits, edge("t", action["id"]),
        *(edge(action["id"], f"w_{p}", p) for p in ports),
    )  # fmt: skip


def test_filter_splits_by_a_rule_or_a_saved_segment():
    moscow = [make_customer(city="Moscow").pk for _ in range(2)]
    other = [make_customer(city="Omsk").pk]
    segment = create_segment("Muscovites", MOSCOW, actor=ACTOR, refresh=False)
    for params in ({"rules": MOSCOW}, {"segment": segment.pk}):
        f = node("f", "filter", **params)
        campaign = make_campaign(_split_graph(f, ("positive", "negative")))
        now = timezone.now()
        engine.enter(campaign.pk, moscow + other, now=now)
        engine.run_due(campaign.pk, now=now)
        assert _ports_of(campaign, "f") == {"w_positive": moscow, "w_negative": other}


def test_select_from_a_segment_passes_on_its_members_only():
    moscow = make_customer(city="Moscow").pk
    omsk = make_customer(city="Omsk").pk
    segment = create_segment("Muscovites", MOSCOW, actor=ACTOR, refresh=False)
    counts, _ = _run(node("s", "select_segment", segment=segment.pk), [moscow, omsk])
    assert counts == {"out": 1}


def test_wait_and_wait_until_hold_customers_until_their_time():
    customer = make_customer().pk
    now = timezone.now()
    at = now + timedelta(days=3)
    for waiting, due in (
        (node("w", "wait", amount=90, unit="minutes"), now + timedelta(minutes=90)),
        (node("w", "wait_until", at=at.isoformat()), at),
    ):
        campaign = make_campaign(chain(T, waiting))
        engine.enter(campaign.pk, [customer], now=now)
        [token] = Token.objects.filter(campaign=campaign)
        assert token.due_at == due
        assert engine.run_due(campaign.pk, now=due - timedelta(seconds=1)) == 0
        assert engine.run_due(campaign.pk, now=due) == 1
        assert StepRun.objects.get(campaign=campaign, node="w").counts_out == {"out": 1}


def test_wait_until_a_past_date_goes_on_at_once():
    customer = make_customer().pk
    past = timezone.now() - timedelta(days=1)
    counts, _ = _run(node("w", "wait_until", at=past.isoformat()), [customer])
    assert counts == {"out": 1}


def test_send_email_renders_the_template_per_customer_and_skips_customers_without_one():
    anna = make_customer(first_name="Anna", email="anna@example.com").pk
    nomail = make_customer(first_name="Ivan").pk
    msg = node(
        "m", "send_message", channel="email", subject="Hi {{ customer.first_name }}",
        template="{{ customer.first_name }} <b>{{ customer.attributes.tier|default:'none' }}</b>",
    )  # fmt: skip
    counts, _ = _run(msg, [anna, nomail])
    assert counts == {"out": 1, "no_contact": 1}
    [sent] = mail.outbox
    assert (sent.to, sent.subject, sent.body) == (
        ["anna@example.com"],
        "Hi Anna",
        "Anna <b>none</b>",
    )
    assert OutboxMessage.objects.get().status == OutboxStatus.SENT


class FailingGateway:
    def send(self, message):  # type: ignore[no-untyped-def]
        raise ConnectionError("gateway down")


def test_sms_and_push_go_through_the_gateway_and_failures_are_recorded(settings):
    with_phone = make_customer(phone="+79123456789").pk
    without = make_customer().pk
    counts, _ = _run(
        node("s", "send_message", channel="sms", template="Code 1"), [with_phone, without]
    )
    assert counts == {"out": 1, "no_contact": 1}
    sms = OutboxMessage.objects.get(channel=Channel.SMS)
    assert (sms.to, sms.body, sms.status) == ("+79123456789", "Code 1", OutboxStatus.SENT)

    settings.TAGBASE_CAMPAIGN_GATEWAY = f"{__name__}.FailingGateway"
    counts, _ = _run(node("p", "send_message", channel="push", template="Hello"), [without])
    push = OutboxMessage.objects.get(channel=Channel.PUSH)
    assert (push.to, push.status, push.error) == (str(without), OutboxStatus.FAILED, "gateway down")
    assert deliver() == 0  # a failed message is not retried by itself


def test_limit_lets_through_at_most_n_customers_over_all_batches():
    ids = [make_customer().pk for _ in range(5)]
    limit = node("l", "limit", max=3)
    campaign = make_campaign(_split_graph(limit, ("out", "over")))
    now = timezone.now()
    engine.enter(campaign.pk, ids[:2], now=now)
    engine.enter(campaign.pk, ids[2:], now=now)
    engine.run_due(campaign.pk, now=now)
    assert _ports_of(campaign, "l") == {"w_out": ids[:3], "w_over": ids[3:]}


def test_ab_split_is_deterministic_and_follows_the_percentages():
    ids = [make_customer().pk for _ in range(2000)]
    split = node("s", "split", percentages=[20, 30, 50])
    campaign = make_campaign(_split_graph(split, ("a", "b", "c")))
    now = timezone.now()
    engine.enter(campaign.pk, ids, now=now)
    engine.run_due(campaign.pk, now=now)
    ports = _ports_of(campaign, "s")
    shares = [len(ports[f"w_{p}"]) / len(ids) for p in "abc"]
    assert [round(s, 2) for s in shares] == pytest.approx([0.2, 0.3, 0.5], abs=0.04)
    assert sorted(c for got in ports.values() for c in got) == ids  # everyone exactly once

    from tagbase.campaigns.actions import StepContext
    from tagbase.campaigns.actions.split import Split

    def variant_of(order: list[int]) -> dict[int, str]:
        ctx = StepContext(campaign, "s", 0, {"percentages": [20, 30, 50]}, now)
        return {c: port for port, got in Split.execute(order, ctx).items() for c in got}

    full = variant_of(ids)
    assert full == variant_of(list(reversed(ids)))  # order does not matter
    assert variant_of(ids[::7]) == {c: full[c] for c in ids[::7]}  # nor who else is there


def test_control_group_holds_out_the_percentage():
    ids = [make_customer().pk for _ in range(2000)]
    group = node("c", "control_group", percent=10)
    campaign = make_campaign(_split_graph(group, ("out", "control")))
    now = timezone.now()
    engine.enter(campaign.pk, ids, now=now)
    engine.run_due(campaign.pk, now=now)
    ports = _ports_of(campaign, "c")
    assert len(ports["w_control"]) / len(ids) == pytest.approx(0.10, abs=0.025)
    assert len(ports["w_out"]) + len(ports["w_control"]) == len(ids)


@override_settings(DEFAULT_FROM_EMAIL="tagbase@example.com")
def test_notify_manager_sends_one_email_per_step():
    ids = [make_customer().pk for _ in range(3)]
    counts, _ = _run(node("n", "notify_manager", email="boss@example.com"), ids, name="Spring")
    assert counts == {"out": 3}
    [sent] = mail.outbox
    assert sent.to == ["boss@example.com"] and sent.subject == "Campaign “Spring”"
    assert sent.body == "3 customers reached step n of campaign “Spring”."
