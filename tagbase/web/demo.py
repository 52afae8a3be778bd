"""Demo data: a realistic loyalty programme to try Tagbase on (``tagbase demo``).

``load_demo`` inserts made-up customers with cards, receipts and events (``demo_people``),
computes their receipt metrics, then builds about twenty audiences of varied sizes THROUGH the
membership write path (``audiences.services``, kind ``cli``, source ``demo``), with a few
removals and one undo so the history looks lived in, a few saved segments, and two campaigns
(one active with a month of history run by the engine on a back-dated clock). ``delete_demo``
takes it all away again.

Demo customers are recognised by their external id (``DEMO-0000001``…), demo audiences by their
name AND the marker at the end of their description, so ``--reset`` never touches other data.
Rows are written with bulk inserts (``demo_sql``: COPY / executemany), a chunk of customers at a
time so memory stays flat; nothing is written one row per query.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone

from tagbase.accounts.actors import Actor
from tagbase.audiences import services
from tagbase.audiences.models import Audience, OperationKind
from tagbase.audiences.queries import audience_by_name, member_ids_after
from tagbase.campaigns import engine as campaign_engine
from tagbase.campaigns import services as campaign_services
from tagbase.campaigns.models import (
    Campaign,
    Entry,
    OutboxMessage,
    Passage,
    SegmentWatch,
    Token,
)
from tagbase.customers.models import Card, Customer, CustomerStats, Event, Receipt
from tagbase.customers.services import refresh_customer_stats
from tagbase.lib.progress import Progress
from tagbase.segments import services as segment_services
from tagbase.segments.models import Segment
from tagbase.web.demo_people import DEMO_PREFIX, PeopleGenerator, Person
from tagbase.web.demo_sql import analyze, insert_rows, reserve_ids

DEMO_MARKER = "(demo data)"
SOURCE = "demo"
CHUNK = 2_000  # customers generated and inserted together (memory stays flat)


class DemoError(Exception):
    """The demo cannot be loaded as asked; the message says what to do."""


@dataclass
class DemoReport:
    """What ``load_demo`` made and how long each phase took (seconds)."""

    customers: int = 0
    cards: int = 0
    receipts: int = 0
    events: int = 0
    audiences: int = 0
    operations: int = 0
    segments: int = 0
    campaigns: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def demo_customers() -> QuerySet[Customer]:
    return Customer.objects.filter(external_id__startswith=DEMO_PREFIX)


def demo_audiences() -> QuerySet[Audience]:
    names = [a.name for a in AUDIENCES]
    return Audience.objects.filter(name__in=names, description__endswith=DEMO_MARKER)


def load_demo(
    *, customers: int, seed: int, receipts_per_customer: float, actor: Actor
) -> DemoReport:
    """Insert ``customers`` demo customers and build the demo audiences.

    Refuses (``DemoError``) when demo customers or audiences already exist: run ``delete_demo``
    first. Not idempotent; deterministic for a seed (names, contacts, receipts, memberships by
    customer; database ids differ between runs).
    """
    if demo_customers().exists() or demo_audiences().exists():
        raise DemoError("Demo data is already loaded; use --reset to replace it.")
    taken = [a.name for a in AUDIENCES if audience_by_name(a.name) is not None]
    if taken:
        raise DemoError(
            f"Audience {taken[0]!r} exists and is not demo data; the demo needs its name. "
            "Rename it first (tagbase audience rename)."
        )
    report = DemoReport()
    now = timezone.now()
    started = time.monotonic()
    with transaction.atomic():
        _insert_people(PeopleGenerator(seed, receipts_per_customer, now), customers, report)
    report.timings["customers"] = time.monotonic() - started
    mark = time.monotonic()
    refresh_customer_stats(demo_customers().values_list("sc_id", flat=True))
    analyze(Customer, Card, Receipt, Event, CustomerStats)
    report.timings["stats"] = time.monotonic() - mark
    mark = time.monotonic()
    report.audiences, report.operations = _build_audiences(random.Random(seed), now, actor)
    report.timings["audiences"] = time.monotonic() - mark
    mark = time.monotonic()
    report.segments = _build_segments(actor)
    report.timings["segments"] = time.monotonic() - mark
    mark = time.monotonic()
    report.campaigns = _build_campaigns(random.Random(seed), now, actor)
    report.timings["campaigns"] = time.monotonic() - mark
    report.timings["total"] = time.monotonic() - started
    return report


def delete_demo(*, actor: Actor) -> tuple[int, int]:
    """Delete the demo audiences (through ``audiences.services.delete_audience``), take demo
    customers out of any other audience (through the write path, recorded), then delete the
    demo customers with their cards, receipts, events and stats. Idempotent.
    Returns (audiences deleted, customers deleted)."""
    # Campaigns first: they name demo audiences and segments.
    for campaign in Campaign.objects.filter(description__endswith=DEMO_MARKER):
        campaign_services.delete_campaign(campaign, actor=actor)
    # Then segments: they may name demo audiences and each other (users before the used).
    demo_segments = list(Segment.objects.filter(description__endswith=DEMO_MARKER))
    while demo_segments:
        free = [s for s in demo_segments if not segment_services.users_of(s)]
        for segment in free or demo_segments[:1]:
            segment_services.delete_segment(segment, actor=actor)
        demo_segments = [s for s in demo_segments if s not in free]
    audiences = list(demo_audiences())
    made_by_campaigns = [a for a, _ in CAMPAIGN_AUDIENCES]
    audiences += Audience.objects.filter(
        name__in=made_by_campaigns, description__endswith=DEMO_MARKER
    )
    for audience in audiences:
        services.delete_audience(audience, actor=actor)
    ids = list(demo_customers().values_list("sc_id", flat=True))
    services.remove_customers_from_all_audiences(
        ids, actor=actor, kind=OperationKind.CLI, source_ref="demo --reset"
    )
    with transaction.atomic():
        # Children first, each in one set-based DELETE (Django's fast path: no cascades below
        # them); then the customers themselves, which nothing refers to any more.
        # Campaign rows of demo customers in campaigns that are not demo data go too (Entry,
        # Token and Passage have no database constraint to stop a raw delete: see their model).
        for model in (
            CustomerStats, Event, Receipt, Card,
            Passage, Token, Entry, SegmentWatch, OutboxMessage,
        ):  # fmt: skip
            model.objects.filter(customer__in=demo_customers()).delete()
        deleted = demo_customers()._raw_delete(demo_customers().db)
    return len(audiences), deleted


# --- Customers and what hangs off them ------------------------------------------------------


def _insert_people(gen: PeopleGenerator, total: int, report: DemoReport) -> None:
    with Progress("Customers", total) as bar:
        for start in range(0, total, CHUNK):
            people = [gen.person(i) for i in range(start, min(start + CHUNK, total))]
            _insert_chunk(people, report)
            bar.advance(len(people))


def _insert_chunk(people: list[Person], report: DemoReport) -> None:
    ids = reserve_ids(Customer, len(people))
    customers, cards, receipts, events = [], [], [], []
    for person, sc_id in zip(people, ids, strict=True):
        registered = person.customer["registered_at"]
        customers.append(
            {"sc_id": sc_id, "created_at": registered, "updated_at": registered, **person.customer}
        )
        # The generated dicts are ours alone: tag them in place rather than copy 500k dicts.
        for row in itertools.chain(person.cards, person.receipts, person.events):
            row["customer_id"] = sc_id
        cards += person.cards
        receipts += person.receipts
        events += person.events
    report.customers += insert_rows(Customer, customers)
    report.cards += insert_rows(Card, cards)
    report.receipts += insert_rows(Receipt, receipts)
    report.events += insert_rows(Event, events)


# --- Audiences ------------------------------------------------------------------------------

Selector = Callable[[QuerySet[Customer], datetime, random.Random], Iterable[int]]


@dataclass(frozen=True)
class DemoAudience:
    name: str
    description: str
    select: Selector


def _ids(qs: QuerySet[Any]) -> list[int]:
    return list(qs.values_list("sc_id", flat=True).order_by("sc_id"))


def _sample(share: float) -> Selector:
    """A random share of all demo customers, chosen by the seeded generator."""

    def select(qs: QuerySet[Customer], now: datetime, rng: random.Random) -> list[int]:
        ids = _ids(qs)
        return sorted(rng.sample(ids, int(len(ids) * share)))

    return select


def _event(name: str, days: int) -> Selector:
    def select(qs: QuerySet[Customer], now: datetime, rng: random.Random) -> list[int]:
        recent = Event.objects.filter(
            customer=OuterRef("pk"), name=name, occurred_at__gte=now - timedelta(days=days)
        )
        return _ids(qs.filter(Exists(recent)))

    return select


def _top_spenders(share: float) -> Selector:
    def select(qs: QuerySet[Customer], now: datetime, rng: random.Random) -> list[int]:
        limit = max(1, int(qs.count() * share))
        top = qs.filter(stats__isnull=False).order_by("-stats__total_amount", "sc_id")
        return sorted(top.values_list("sc_id", flat=True)[:limit])

    return select


def _age_between(low: int, high: int, gender: str) -> Selector:
    def select(qs: QuerySet[Customer], now: datetime, rng: random.Random) -> list[int]:
        today = now.date()
        born_after = today.replace(year=today.year - high - 1)
        born_before = today.replace(year=today.year - low)
        return _ids(
            qs.filter(gender=gender, birth_date__gt=born_after, birth_date__lte=born_before)
        )

    return select


def _filter(**lookups: Any) -> Selector:
    def select(qs: QuerySet[Customer], now: datetime, rng: random.Random) -> list[int]:
        return _ids(qs.filter(**lookups))

    return select


def _relative(**lookups: timedelta) -> Selector:
    """``lookups`` name a date column and how long before now it is compared with."""

    def select(qs: QuerySet[Customer], now: datetime, rng: random.Random) -> list[int]:
        return _ids(qs.filter(**{k: now - v for k, v in lookups.items()}))

    return select


def _birthday_this_month(qs: QuerySet[Customer], now: datetime, rng: random.Random) -> list[int]:
    return _ids(qs.filter(birth_date__month=timezone.localdate(now).month))


def _big_receipt_last_year(qs: QuerySet[Customer], now: datetime, rng: random.Random) -> list[int]:
    big = Receipt.objects.filter(
        customer=OuterRef("pk"), amount__gte=5000, date__gte=now - timedelta(days=365)
    )
    return _ids(qs.filter(Exists(big)))


def _nobody(qs: QuerySet[Customer], now: datetime, rng: random.Random) -> list[int]:
    return []


def _d(text: str) -> str:
    return f"{text} {DEMO_MARKER}"


AUDIENCES: list[DemoAudience] = [
    DemoAudience("VIP", _d("Top 2% of customers by total spend."), _top_spenders(0.02)),
    DemoAudience(
        "Лояльные покупатели", _d("12 receipts or more."), _filter(stats__receipt_count__gte=12)
    ),
    DemoAudience(
        "Спящие 90 дней",
        _d("Bought before, but nothing in the last 90 days."),
        _relative(stats__last_receipt_at__lt=timedelta(days=90)),
    ),
    DemoAudience("Newsletter", _d("Subscribed to the e-mail newsletter."), _sample(0.45)),
    DemoAudience(
        "Birthday this month", _d("Born in the month the demo was loaded."), _birthday_this_month
    ),
    DemoAudience(
        "Новые клиенты (30 дней)",
        _d("Registered in the last 30 days."),
        _relative(registered_at__gte=timedelta(days=30)),
    ),
    DemoAudience("Москва", _d("Customers living in Moscow."), _filter(city="Москва")),
    DemoAudience(
        "Санкт-Петербург",
        _d("Customers living in Saint Petersburg."),
        _filter(city="Санкт-Петербург"),
    ),
    DemoAudience("Без покупок", _d("Registered, never bought."), _filter(stats__isnull=True)),
    DemoAudience(
        "Мобильное приложение",
        _d("Logged in to the app in the last 180 days."),
        _event("app_login", 180),
    ),
    DemoAudience(
        "Push: открывали за 30 дней",
        _d("Opened a push in the last 30 days."),
        _event("push_open", 30),
    ),
    DemoAudience(
        "Крупный средний чек",
        _d("Average receipt of 3,000 or more."),
        _filter(stats__average_amount__gte=3000),
    ),
    DemoAudience("Женщины 25-40", _d("Women aged 25 to 40."), _age_between(25, 40, "f")),
    DemoAudience("Мужчины 18-30", _d("Men aged 18 to 30."), _age_between(18, 30, "m")),
    DemoAudience(
        "Заблокированные карты", _d("Holders of a blocked card."), _filter(cards__status="blocked")
    ),
    DemoAudience(
        "Крупная покупка за год",
        _d("A receipt of 5,000 or more in the last year."),
        _big_receipt_last_year,
    ),
    DemoAudience("A/B тест: вариант A", _d("A random 10% for an A/B test."), _sample(0.10)),
    DemoAudience("Контрольная группа", _d("A random 5% kept out of campaigns."), _sample(0.05)),
    DemoAudience("Партнёрская акция «Кофе»", _d("Imported from a partner's file."), _sample(0.015)),
    DemoAudience("Сотрудники", _d("Staff (a handful)."), _sample(0.0005)),
    DemoAudience("Черновик: весенняя рассылка", _d("Created, not filled yet."), _nobody),
]


def _build_audiences(rng: random.Random, now: datetime, actor: Actor) -> tuple[int, int]:
    """Create and fill the audiences, then make the history look used. Returns (audiences,
    operations)."""
    qs = demo_customers()
    made: dict[str, Audience] = {}
    operations = 0
    with Progress("Audiences", len(AUDIENCES)) as bar:
        for spec in AUDIENCES:
            audience = services.create_audience(
                spec.name, actor=actor, description=spec.description
            )
            ids = list(spec.select(qs, now, rng))
            if ids:
                services.add_customers_to_audience(
                    audience, ids, actor=actor, kind=OperationKind.CLI, source_ref=SOURCE
                )
                operations += 1
            made[spec.name] = audience
            bar.advance()
    return len(made), operations + _lived_in_history(made, rng, actor)


def _lived_in_history(made: dict[str, Audience], rng: random.Random, actor: Actor) -> int:
    """A few removals (unsubscribes, a VIP downgrade) and one mistaken add that was undone."""
    ops = 0
    for name, share in (("Newsletter", 0.03), ("VIP", 0.05), ("Контрольная группа", 0.02)):
        members = _member_ids(made[name])
        leaving = sorted(rng.sample(members, max(1, int(len(members) * share)))) if members else []
        if leaving:
            services.remove_customers_from_audience(
                made[name], leaving, actor=actor, kind=OperationKind.CLI, source_ref=SOURCE
            )
            ops += 1
    wrong = _member_ids(made["Москва"])[:300]
    if wrong:
        mistake = services.add_customers_to_audience(
            made["Санкт-Петербург"], wrong, actor=actor, kind=OperationKind.CLI, source_ref=SOURCE
        )
        services.undo_operation(mistake, actor=actor)
        ops += 2
    return ops


def _member_ids(audience: Audience) -> list[int]:
    return member_ids_after(audience.pk, 0, 10**9)


# --- Saved segments -------------------------------------------------------------------------


def _build_segments(actor: Actor) -> int:
    """A few saved segments like a marketer's, with their metrics computed."""
    vip = audience_by_name("VIP")
    specs: list[tuple[str, str, dict[str, Any]]] = [
        (
            "Активные москвичи",
            "Live in Moscow and bought in the last 90 days.",
            {
                "op": "and",
                "rules": [
                    {"field": "customer.city", "operator": "eq", "value": "Москва"},
                    {"field": "receipts.days_since_last", "operator": "lt", "value": 90},
                ],
            },
        ),
        (
            "30+ в приложении",
            "Aged 30 or more, logged in to the app at least 3 times in the last 30 days.",
            {
                "op": "and",
                "rules": [
                    {"field": "customer.age", "operator": "gte", "value": 30},
                    {
                        "field": "events.count",
                        "event": "app_login",
                        "days": 30,
                        "operator": "gte",
                        "value": 3,
                    },
                ],
            },
        ),
        (
            "Уходящие покупатели",
            "At least 3 receipts, but none in the last 180 days.",
            {
                "op": "and",
                "rules": [
                    {"field": "receipts.count", "operator": "gte", "value": 3},
                    {"field": "receipts.days_since_last", "operator": "gt", "value": 180},
                ],
            },
        ),
        (
            "Дни рождения на неделе",
            "A birthday within the next 7 days.",
            {
                "op": "and",
                "rules": [
                    {
                        "field": "customer.birth_date",
                        "operator": "anniversary_within_days",
                        "value": 7,
                    },
                ],
            },
        ),
    ]
    if vip is not None:
        specs.append(
            (
                "VIP или крупный чек",
                "In the VIP audience, or an average receipt of 3,000 or more.",
                {
                    "op": "or",
                    "rules": [
                        {"field": "audience", "operator": "in", "value": vip.pk},
                        {"field": "receipts.average_amount", "operator": "gte", "value": 3000},
                    ],
                },
            )
        )
    made = 0
    for name, text, rules in specs:
        if Segment.objects.filter(name=name).exists():
            continue
        segment_services.create_segment(name, rules, actor=actor, description=_d(text))
        made += 1
    return made


# --- Campaigns ------------------------------------------------------------------------------

CAMPAIGN_AUDIENCES = (
    ("Welcome VIPs: приветствие", "Big spenders the Welcome VIPs campaign welcomed."),
    ("Welcome VIPs: ещё не VIP", "Entered Welcome VIPs with less than 10,000 spent."),
)
HISTORY_DAYS = 30


def _welcome_graph(welcomed: int, not_yet: int) -> dict[str, Any]:
    def at(x: int, y: int) -> dict[str, int]:
        return {"x": x, "y": y}

    return {
        "nodes": [
            {"id": "receipt", "kind": "receipt_issued", "params": {}, "position": at(40, 160)},
            {
                "id": "big_spender",
                "kind": "filter",
                "params": {
                    "rules": {
                        "op": "and",
                        "rules": [
                            {
                                "field": "receipts.total_amount",
                                "operator": "gte",
                                "value": "10000",
                            }
                        ],
                    }
                },
                "position": at(300, 160),
            },
            {
                "id": "welcomed",
                "kind": "audience",
                "params": {"action": "add", "audience": welcomed},
                "position": at(580, 60),
            },
            {
                "id": "sms",
                "kind": "send_message",
                "params": {
                    "channel": "sms",
                    "template": "{{ customer.first_name }}, добро пожаловать в VIP-клуб!",
                },
                "position": at(860, 60),
            },
            {
                "id": "week",
                "kind": "wait",
                "params": {"amount": 7, "unit": "days"},
                "position": at(580, 280),
            },
            {
                "id": "not_yet",
                "kind": "audience",
                "params": {"action": "add", "audience": not_yet},
                "position": at(860, 280),
            },
        ],
        "edges": [
            {"from": "receipt", "port": "out", "to": "big_spender"},
            {"from": "big_spender", "port": "positive", "to": "welcomed"},
            {"from": "welcomed", "port": "out", "to": "sms"},
            {"from": "big_spender", "port": "negative", "to": "week"},
            {"from": "week", "port": "out", "to": "not_yet"},
        ],
    }


def _win_back_graph(segment: int) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "id": "monday",
                "kind": "repeat",
                "params": {"every": "week", "weekday": 1, "time": "10:00"},
                "position": {"x": 40, "y": 120},
            },
            {
                "id": "leaving",
                "kind": "select_segment",
                "params": {"segment": segment},
                "position": {"x": 300, "y": 120},
            },
            {
                "id": "ab",
                "kind": "split",
                "params": {"percentages": [50, 50]},
                "position": {"x": 560, "y": 120},
            },
            {
                "id": "sms",
                "kind": "send_message",
                "params": {"channel": "sms", "template": "Мы скучаем! Скидка 15% до воскресенья."},
                "position": {"x": 820, "y": 40},
            },
            {
                "id": "push",
                "kind": "send_message",
                "params": {"channel": "push", "template": "Скидка 15% ждёт вас в приложении."},
                "position": {"x": 820, "y": 220},
            },
        ],
        "edges": [
            {"from": "monday", "port": "out", "to": "leaving"},
            {"from": "leaving", "port": "out", "to": "ab"},
            {"from": "ab", "port": "a", "to": "sms"},
            {"from": "ab", "port": "b", "to": "push"},
        ],
    }


def _build_campaigns(rng: random.Random, now: datetime, actor: Actor) -> int:
    """Two campaigns: *Welcome VIPs* (active, receipt issued → filter → add to an audience and an
    SMS, or wait a week → another audience) with a month of history — the customers who bought
    on each of the last 30 days let in on that day and moved through the chain with the engine's
    clock set to then — and *Win back leaving buyers* (not active, a weekly repeat → a segment →
    an A/B split into SMS and push). Messages go to the outbox gateway only."""
    welcomed = services.create_audience(
        CAMPAIGN_AUDIENCES[0][0], actor=actor, description=_d(CAMPAIGN_AUDIENCES[0][1])
    )
    not_yet = services.create_audience(
        CAMPAIGN_AUDIENCES[1][0], actor=actor, description=_d(CAMPAIGN_AUDIENCES[1][1])
    )
    welcome = campaign_services.create_campaign(
        "Welcome VIPs",
        _welcome_graph(welcomed.pk, not_yet.pk),
        actor=actor,
        description=_d("Welcomes customers whose purchases reach 10,000."),
        reentry_days=365,
    )
    campaign_services.activate_campaign(welcome, actor=actor)
    buyers = sorted(
        CustomerStats.objects.filter(customer__in=demo_customers()).values_list(
            "customer_id", flat=True
        )
    )
    rng.shuffle(buyers)
    per_day = max(1, len(buyers) // 400)
    taken = 0
    for days_ago in range(HISTORY_DAYS - 1, 0, -1):  # within the page's 30-day chart
        day = timezone.localdate(now) - timedelta(days=days_ago)
        moment = timezone.make_aware(datetime.combine(day, datetime.min.time())) + timedelta(
            hours=9, minutes=rng.randint(0, 600)
        )
        count = rng.randint(per_day // 2, per_day * 2) if per_day > 1 else 1
        ids = buyers[taken : taken + count]
        taken += count
        if ids:
            campaign_engine.enter(
                welcome.pk, ids, context={"trigger": "receipt_issued", "demo": True}, now=moment
            )
        campaign_engine.run_due(welcome.pk, now=moment + timedelta(minutes=5))
    campaign_engine.run_due(welcome.pk, now=now)
    made = 1
    leaving = Segment.objects.filter(name="Уходящие покупатели").first()
    if leaving is not None:
        campaign_services.create_campaign(
            "Win back leaving buyers",
            _win_back_graph(leaving.pk),
            actor=actor,
            description=_d("Every Monday: an A/B test of SMS against push for leaving buyers."),
        )
        made += 1
    return made
