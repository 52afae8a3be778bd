"""A deterministic data set full of edge cases for the segment oracle tests.

Everything is built around fixed moments (``SCENARIOS``: a time zone and a "now"), so that
birthdays fall today, tomorrow and across the new year, 29 February is met in leap and other
years, and receipts, registrations and events sit exactly on local midnights (and one
microsecond before) of the days the rules count back to. ``load()`` writes the data through the
ordinary models and services and returns the same data as an ``oracle.Snapshot`` with the ids
the database gave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from tagbase.segments.tests import oracle

NY = "America/New_York"
SYDNEY = "Australia/Sydney"


def _at(zone: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone))  # type: ignore[misc]


# (time zone, now): a non-leap 28 February late in the evening (UTC is already 1 March), the
# last evening of a year (UTC is already in the next one), a leap-year 28 February just after
# midnight, and a zone ahead of UTC, on summer time, on New Year's night (UTC is still in the
# old year).
SCENARIOS: list[tuple[str, datetime]] = [
    (NY, _at(NY, 2025, 2, 28, 23, 30)),
    (NY, _at(NY, 2024, 12, 31, 22, 15)),
    (NY, _at(NY, 2024, 2, 28, 0, 5)),
    (SYDNEY, _at(SYDNEY, 2025, 1, 1, 0, 30)),
]
# Windows ("days") whose first local midnight gets data on both sides of it.
WINDOWS = (1, 7, 30, 365)
EVENT_NAMES = ("app_login", "App_Login", "visit", "вход")


@dataclass
class Person:
    """One customer and everything attached to them (times are aware datetimes)."""

    label: str
    registered_at: datetime
    gender: str = ""
    birth_date: date | None = None
    city: str = ""
    country: str = ""
    phone_raw: str = ""
    phone: str | None = None
    email_raw: str = ""
    email: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    receipts: list[tuple[datetime, str, int]] = field(default_factory=list)  # (date, amount, items)
    cards: list[str] = field(default_factory=list)
    events: list[tuple[str, datetime]] = field(default_factory=list)
    audiences: list[str] = field(default_factory=list)


def _midnights() -> list[datetime]:
    """Local midnights that the scenarios' windows start at, plus today's and tomorrow's."""
    found: set[datetime] = set()
    for zone, now in SCENARIOS:
        today = now.astimezone(ZoneInfo(zone)).date()
        for back in (0, -1, *WINDOWS, 2, 29, 364, 366):
            day = today - timedelta(days=back)
            found.add(datetime.combine(day, time.min, tzinfo=ZoneInfo(zone)))
    return sorted(found)


_TINY = timedelta(microseconds=1)
_REG = _at(NY, 2020, 6, 1, 12, 0)

# Attribute values of every JSON type, numeric-looking keys, keys with dots and dashes,
# texts of spaces, dates valid and invalid.
ATTRIBUTES: list[dict[str, Any]] = [
    {"level": 3, "tier": "Gold", "vip": True, "since": "2024-02-29"},
    {"level": 3.5, "tier": "gold", "vip": False, "since": "2023-02-29"},
    {"level": -2, "tier": "", "vip": None, "since": "2024-13-01"},
    {"level": 0, "tier": "   ", "vip": "true", "since": "2024-04-31"},
    {"level": "3", "tier": "GOLD ", "vip": 1, "since": "2024-02-29T23:59:59+14:00"},
    {"level": True, "tier": 5, "vip": [], "since": "0000-01-01"},
    {"level": 1e30, "tier": None, "vip": {}, "since": "9999-12-31"},
    {"level": 1e-12, "tier": ["Gold"], "since": "2024-1-05"},
    {"level": -0.5, "tier": {"name": "Gold"}, "since": " 2024-01-05"},
    {"level": 12345678901, "tier": "Ü-Gold", "since": "20240105"},
    {"level": 2, "tier": "ÉCOLE", "since": "٢٠٢٤-٠١-٠٥"},  # noqa: RUF001 - Arabic-Indic digits
    {"level": 5, "tier": "école", "since": 20240105},
    {"level": 4.999, "tier": "İstanbul", "since": "2025-02-28"},
    {"level": 7, "tier": "50% off", "since": "2024-12-31 rest"},
    {"level": 10, "tier": "a_b", "since": "2025-01-01"},
    {"123": "numeric key", "a.b": "dotted", "a-b": 1, "x.y.z": True, "0": 0},
    {"123": 123, "a.b": 2.5, "a-b": "dash", "since": "2024-02-28", "level": 1},
    {"123": "2024-03-01", "a.b": "", "a-b": False, "0": "zero", "tier": "ΟΔΟΣ"},
    {"a": {"b": "nested"}, "tier": "οδος", "since": "1900-03-01"},
    {"tier": "Straße", "level": 100, "since": "2024-12-30"},
    {"tier": "STRASSE", "level": 99.99, "since": "2000-02-29"},
    {"tier": "%", "level": 3.0, "since": "2024-02-29"},
    {"tier": "_", "since": "2025-03-01"},
    {"tier": "\\", "since": "2024-01-01"},
    {},
]

CITIES = [
    "Moscow",
    "moscow",
    "MOSCOW",
    " Moscow ",
    "",
    "   ",
    "ÉCOLE",
    "école",
    "Ecole",
    "İstanbul",
    "istanbul",
    "ISTANBUL",
    "ΟΔΟΣ",
    "οδος",
    "Straße",
    "50% off",
    "a_b",
    "St. Petersburg",
    "Omsk",
    "Москва",
    "МОСКВА",  # noqa: RUF001 - Cyrillic
]
COUNTRIES = ["", "Russia", "russia", "RUSSIA", "Türkiye", "TÜRKIYE", "Deutschland", " ", "Ελλάδα"]

BIRTH_DATES: list[date | None] = [
    None,
    date(2000, 2, 29),
    date(2004, 2, 29),
    date(2024, 2, 29),
    date(1999, 2, 28),
    date(2001, 3, 1),
    date(1985, 12, 31),
    date(1986, 1, 1),
    date(1987, 1, 2),
    date(1988, 12, 30),
    date(1990, 5, 17),
    date(2025, 2, 28),
    date(2024, 2, 28),
    date(2024, 12, 31),
    date(2025, 1, 1),
    date(1925, 3, 1),
    date(1900, 1, 1),
    date(2026, 6, 1),  # in the future
    date(1995, 2, 27),
    date(1996, 3, 2),
    date(2000, 1, 31),
]

PHONES: list[tuple[str, str | None]] = [
    ("+79161234567", "+79161234567"),
    ("8 916 123-45-67", "+79161234567"),
    ("123", None),
    ("", None),
    ("   ", None),
]
EMAILS: list[tuple[str, str | None]] = [
    ("a@example.com", "a@example.com"),
    ("not-an-email", None),
    ("", None),
    ("A@Example.COM", "a@example.com"),
]
CARD_SETS: list[list[str]] = [
    [],
    ["active"],
    ["blocked"],
    ["expired"],
    ["active", "blocked"],
    ["blocked", "blocked"],
    ["expired", "active", "blocked"],
    [],
]
GENDERS = ["m", "f", "", "f", "m"]


def people() -> list[Person]:
    """The customers: every list above cycled through, so that values combine."""
    midnights = _midnights()
    found: list[Person] = []
    count = 96
    for i in range(count):
        registered = _REG + timedelta(days=37 * i, hours=i)
        if i % 11 == 3:
            registered = midnights[i % len(midnights)]
        elif i % 11 == 4:
            registered = midnights[i % len(midnights)] - _TINY
        elif i == 50:
            registered = _at(NY, 2026, 1, 1)  # in the future
        phone_raw, phone = PHONES[i % len(PHONES)]
        email_raw, email = EMAILS[i % len(EMAILS)]
        person = Person(
            label=f"p{i}",
            registered_at=registered,
            gender=GENDERS[i % len(GENDERS)],
            birth_date=BIRTH_DATES[i % len(BIRTH_DATES)],
            city=CITIES[i % len(CITIES)],
            country=COUNTRIES[(i * 7) % len(COUNTRIES)],
            phone_raw=phone_raw,
            phone=phone,
            email_raw=email_raw,
            email=email,
            attributes=dict(ATTRIBUTES[i % len(ATTRIBUTES)]),
            cards=list(CARD_SETS[i % len(CARD_SETS)]),
        )
        found.append(person)
    _add_receipts(found, midnights)
    _add_events(found, midnights)
    _add_audiences(found)
    return found


def _add_receipts(found: list[Person], midnights: list[datetime]) -> None:
    # Every third customer has no receipts at all.
    with_receipts = [p for i, p in enumerate(found) if i % 3 != 0]
    for n, moment in enumerate(midnights):
        for j, when in enumerate((moment, moment - _TINY)):
            person = with_receipts[(2 * n + j) % len(with_receipts)]
            amount = ("0.10", "0.20", "10.00", "10.01", "0.00", "99.99", "1234.56")[(n + j) % 7]
            person.receipts.append((when, amount, 1 + (n + j) % 4))
    # Averages exactly on half a cent: 9.00 / 8 = 1.125, 9 items / 8 = 1.125.
    halves = with_receipts[5]
    for k in range(8):
        when = _at(NY, 2023, 5, 1 + k, 12)
        halves.receipts.append((when, "2.00" if k == 0 else "1.00", 2 if k == 0 else 1))
    # 0.10 + 0.20 in the same windows (binary fractions would not add up to 0.30).
    tenths = with_receipts[7]
    for amount in ("0.10", "0.20"):
        tenths.receipts.append((_at(NY, 2025, 2, 20, 9), amount, 1))
        tenths.receipts.append((_at(NY, 2024, 12, 29, 9), amount, 1))
    # A receipt dated in the future, a large amount, and a long history.
    with_receipts[9].receipts.append((_at(NY, 2026, 3, 1, 10), "500.00", 3))
    with_receipts[11].receipts.append((_at(NY, 2019, 1, 1, 10), "9999999.99", 0))
    for k in range(12):
        with_receipts[13].receipts.append((_at(NY, 2015 + k, 7, 4, 18), f"{k}.5{k % 10}", k))
    # Receipt numbers are unique per customer; give every receipt a distinct instant anyway.


def _add_events(found: list[Person], midnights: list[datetime]) -> None:
    with_events = [p for i, p in enumerate(found) if i % 4 != 1]
    for n, moment in enumerate(midnights):
        for j, when in enumerate((moment, moment - _TINY)):
            person = with_events[(3 * n + j) % len(with_events)]
            name = EVENT_NAMES[(n + j) % len(EVENT_NAMES)]
            person.events.append((name, when))
    # Several of the same event for one customer, and one in the future.
    for k in range(5):
        with_events[2].events.append(("app_login", _at(NY, 2025, 2, 20 + k, 8)))
        with_events[2].events.append(("app_login", _at(NY, 2024, 12, 25 + k, 8)))
    with_events[4].events.append(("visit", _at(NY, 2026, 1, 1, 8)))


AUDIENCES = ("VIP", "Newsletter", "Empty")


def _add_audiences(found: list[Person]) -> None:
    for i, person in enumerate(found):
        if i % 3 == 1:
            person.audiences.append("VIP")
        if i % 5 in (0, 1):
            person.audiences.append("Newsletter")


def _rule(*rules: Any, op: str = "and", negate: bool = False) -> dict[str, Any]:
    return {"op": op, "negate": negate, "rules": list(rules)}


# Saved segments in creation order: (name, rule given the audience and segment ids by name).
SAVED_SEGMENTS: list[tuple[str, Any]] = [
    (
        "Muscovites",
        lambda a, s: _rule({"field": "customer.city", "operator": "eq", "value": "moscow"}),
    ),
    ("Everyone", lambda a, s: _rule()),
    ("Nobody", lambda a, s: _rule(_rule(negate=True), op="or")),
    (
        "Not Muscovite buyers",
        lambda a, s: _rule(
            {"field": "segment", "operator": "in", "value": s["Muscovites"]},
            {"field": "receipts.count", "operator": "gte", "value": 2},
            op="or",
            negate=True,
        ),
    ),
    (
        "VIP or nested",
        lambda a, s: _rule(
            {"field": "audience", "operator": "in", "value": a["VIP"]},
            {"field": "segment", "operator": "not_in", "value": s["Not Muscovite buyers"]},
            op="or",
        ),
    ),
]


# --- Writing it ---------------------------------------------------------------------------------


def load() -> oracle.Snapshot:
    """Write the data set to the (test) database; the same data as an oracle snapshot."""
    from tagbase.accounts.actors import Actor
    from tagbase.audiences.services import add_customers_to_audience, create_audience
    from tagbase.customers.models import Card, Customer, Event, Receipt
    from tagbase.customers.services import refresh_customer_stats
    from tagbase.segments import services

    actor = Actor.system("oracle test")
    found = people()
    rows = Customer.objects.bulk_create(
        Customer(
            registered_at=p.registered_at,
            gender=p.gender,
            birth_date=p.birth_date,
            city=p.city,
            country=p.country,
            phone_raw=p.phone_raw,
            phone=p.phone,
            email_raw=p.email_raw,
            email=p.email,
            attributes=p.attributes,
            first_name=p.label,
        )
        for p in found
    )
    ids = {p.label: row.pk for p, row in zip(found, rows, strict=True)}
    if None in ids.values():  # a backend that does not return ids from bulk_create
        ids = dict(Customer.objects.values_list("first_name", "sc_id"))
    Receipt.objects.bulk_create(
        Receipt(
            customer_id=ids[p.label],
            number=f"R{k}",
            date=when,
            amount=Decimal(amount),
            items=items,
        )
        for p in found
        for k, (when, amount, items) in enumerate(p.receipts)
    )
    refresh_customer_stats()
    Card.objects.bulk_create(
        Card(customer_id=ids[p.label], number=f"C{ids[p.label]}X{k}", status=status)
        for p in found
        for k, status in enumerate(p.cards)
    )
    Event.objects.bulk_create(
        Event(customer_id=ids[p.label], name=name, occurred_at=when)
        for p in found
        for name, when in p.events
    )
    audience_ids: dict[str, int] = {}
    memberships: set[tuple[int, int]] = set()
    for name in AUDIENCES:
        audience = create_audience(name, actor=actor)
        audience_ids[name] = audience.pk
        chosen = [ids[p.label] for p in found if name in p.audiences]
        if chosen:
            add_customers_to_audience(audience, chosen, actor=actor, kind="api")
        memberships |= {(audience.pk, c) for c in chosen}
    segment_ids: dict[str, int] = {}
    segments: dict[int, Any] = {}
    for name, make in SAVED_SEGMENTS:
        rule = make(audience_ids, segment_ids)
        saved = services.create_segment(name, rule, actor=actor, refresh=False)
        segment_ids[name] = saved.pk
        segments[saved.pk] = rule
    return oracle.Snapshot(
        customers=[
            oracle.Customer(
                sc_id=ids[p.label],
                registered_at=p.registered_at,
                gender=p.gender,
                birth_date=p.birth_date,
                city=p.city,
                country=p.country,
                phone_raw=p.phone_raw,
                phone=p.phone,
                email_raw=p.email_raw,
                email=p.email,
                attributes=p.attributes,
            )
            for p in found
        ],
        receipts=[
            oracle.Receipt(ids[p.label], when, Decimal(amount), items)
            for p in found
            for when, amount, items in p.receipts
        ],
        cards=[oracle.Card(ids[p.label], status) for p in found for status in p.cards],
        events=[oracle.Event(ids[p.label], name, when) for p in found for name, when in p.events],
        memberships=memberships,
        segments=segments,
        audiences=audience_ids,
        segment_ids=segment_ids,
    )
