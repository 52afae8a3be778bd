"""Made-up customers for the demo: names, contacts, cards, receipts and events.

Deterministic for a seed: one ``random.Random`` picks from Faker's ru_RU and en_US name lists
(about 70/30) in a fixed order, so the same seed gives the same people (their database ids may
differ). Picking from the lists directly is ~20x faster than calling Faker per name. Contacts
are written the way partner systems really send them — phones in every local habit, e-mails in
mixed case, a few invalid or missing, a few phones shared by a family — so that normalisation,
warnings and "ambiguous" are visible in the UI. No database access here.
"""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from faker.providers.person.en_US import Provider as EN
from faker.providers.person.ru_RU import Provider as RU

from tagbase.lib.identifiers import InvalidIdentifier, normalize_email, normalize_phone

DEMO_PREFIX = "DEMO-"  # external ids of demo customers start with this; --reset relies on it

# (city, country, weight, phone plan). Weights roughly follow city populations.
CITIES: list[tuple[str, str, float, str]] = [
    ("Москва", "Россия", 26, "ru"),
    ("Санкт-Петербург", "Россия", 12, "ru"),
    ("Новосибирск", "Россия", 4, "ru"),
    ("Екатеринбург", "Россия", 4, "ru"),
    ("Казань", "Россия", 3.5, "ru"),
    ("Нижний Новгород", "Россия", 3, "ru"),
    ("Челябинск", "Россия", 3, "ru"),
    ("Самара", "Россия", 3, "ru"),
    ("Ростов-на-Дону", "Россия", 3, "ru"),
    ("Уфа", "Россия", 3, "ru"),
    ("Краснодар", "Россия", 3, "ru"),
    ("Омск", "Россия", 2.5, "ru"),
    ("Красноярск", "Россия", 2.5, "ru"),
    ("Воронеж", "Россия", 2.5, "ru"),
    ("Пермь", "Россия", 2.5, "ru"),
    ("Волгоград", "Россия", 2.5, "ru"),
    ("Тюмень", "Россия", 2, "ru"),
    ("Калининград", "Россия", 1.5, "ru"),
    ("Сочи", "Россия", 1.5, "ru"),
    ("Владивосток", "Россия", 1.5, "ru"),
    ("Иркутск", "Россия", 1.5, "ru"),
    ("Ярославль", "Россия", 1.5, "ru"),
    ("Минск", "Беларусь", 2, "by"),
    ("Алматы", "Казахстан", 2, "kz"),
    ("Ташкент", "Узбекистан", 1, "uz"),
    ("Ереван", "Армения", 0.7, "am"),
    ("Берлин", "Германия", 0.5, "de"),
    ("New York", "USA", 0.4, "us"),
]
_CITY_WEIGHTS = [c[2] for c in CITIES]

RU_DOMAINS = (
    ["mail.ru"] * 6
    + ["yandex.ru"] * 5
    + ["gmail.com"] * 4
    + ["bk.ru", "list.ru", "inbox.ru", "rambler.ru", "ya.ru"]
)
EN_DOMAINS = ["gmail.com"] * 5 + ["outlook.com", "yahoo.com", "icloud.com", "hotmail.com"]

EVENT_KINDS = ("app_login", "visit", "push_open", "email_open", "coupon_activated")
PLATFORMS = ("ios", "android")
CAMPAIGN_TAGS = ("spring_sale", "bonus_x2", "birthday", "welcome", "reactivation")


def _pool(weighted: dict[str, float]) -> tuple[list[str], list[float]]:
    """Names and cumulative weights, so a weighted pick is one bisect."""
    names = list(weighted)
    return names, list(itertools.accumulate(weighted.values()))


def _weighted(rng: random.Random, pool: tuple[list[str], list[float]]) -> str:
    return rng.choices(pool[0], cum_weights=pool[1])[0]


# Faker's name lists (ru_RU and en_US); the English ones carry frequency weights.
_EN_FIRST_MALE = _pool(EN.first_names_male)
_EN_FIRST_FEMALE = _pool(EN.first_names_female)
_EN_LAST = _pool(EN.last_names)

_TRANSLIT = dict(
    zip(
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",
        [
            "a",
            "b",
            "v",
            "g",
            "d",
            "e",
            "e",
            "zh",
            "z",
            "i",
            "y",
            "k",
            "l",
            "m",
            "n",
            "o",
            "p",
            "r",
            "s",
            "t",
            "u",
            "f",
            "kh",
            "ts",
            "ch",
            "sh",
            "shch",
            "",
            "y",
            "",
            "e",
            "yu",
            "ya",
        ],
        strict=True,
    )
)


def translit(text: str) -> str:
    return "".join(_TRANSLIT.get(ch, ch) for ch in text.lower())


@dataclass
class Person:
    """One generated customer with what hangs off it; ``index`` is its place in the run."""

    index: int
    customer: dict[str, Any]
    cards: list[dict[str, Any]] = field(default_factory=list)
    receipts: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


class PeopleGenerator:
    """Yields ``Person`` objects one at a time; ``mean_receipts`` is the mean per customer."""

    def __init__(self, seed: int, mean_receipts: float, now: datetime) -> None:
        self.rng = random.Random(seed)
        self.mean_receipts = mean_receipts
        self.now = now
        self.seed = seed
        self.receipt_seq = 0
        self.recent_phones: list[str] = []

    def person(self, index: int) -> Person:
        rng = self.rng
        customer = self._names(index)
        city, country, _, plan = rng.choices(CITIES, weights=_CITY_WEIGHTS)[0]
        customer.update(city=city, country=country)
        customer["registered_at"] = self._registered_at()
        customer["birth_date"] = self._birth_date()
        customer.update(self._phone(plan))
        customer.update(self._email(customer))
        person = Person(index=index, customer=customer)
        person.cards = self._cards(index, customer["registered_at"])
        person.receipts = self._receipts(customer)
        person.events = self._events(customer, bool(person.receipts))
        return person

    # --- personal data ---------------------------------------------------------------------

    def _names(self, index: int) -> dict[str, Any]:
        rng = self.rng
        gender = "f" if rng.random() < 0.55 else "m"
        female = gender == "f"
        if rng.random() < 0.7:
            first = rng.choice(RU.first_names_female if female else RU.first_names_male)
            # Faker's male and female surname lists are aligned (Смирнов / Смирнова).
            last = rng.choice(RU.last_names_female if female else RU.last_names_male)
            middle = rng.choice(RU.middle_names_female if female else RU.middle_names_male)
        else:
            first = _weighted(rng, _EN_FIRST_FEMALE if female else _EN_FIRST_MALE)
            last, middle = _weighted(rng, _EN_LAST), ""
        if rng.random() < 0.02:  # the partner system did not send a gender
            gender = ""
        return {
            "external_id": f"{DEMO_PREFIX}{index + 1:07d}",
            "first_name": first,
            "last_name": last,
            "middle_name": middle,
            "gender": gender,
            "attributes": self._attributes(),
        }

    def _attributes(self) -> dict[str, Any]:
        rng = self.rng
        attrs: dict[str, Any] = {"source": rng.choice(["store", "store", "app", "site"])}
        if rng.random() < 0.3:
            attrs["pet"] = rng.choice(["cat", "dog", "none"])
        if rng.random() < 0.2:
            attrs["children"] = rng.randint(0, 3)
        return attrs

    def _registered_at(self) -> datetime:
        # A growing programme: more recent registrations than old ones (last 5 years).
        u = self.rng.random()
        days = 5 * 365 * (1 - math.sqrt(u))
        return self.now - timedelta(days=days, seconds=self.rng.randint(0, 86_399))

    def _birth_date(self) -> date | None:
        if self.rng.random() < 0.04:
            return None
        year = int(self.rng.triangular(1950, 2006.99, 1988))
        return date(year, 1, 1) + timedelta(days=self.rng.randint(0, 364))

    def _phone(self, plan: str) -> dict[str, Any]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.05:
            return {"phone_raw": "", "phone": None}
        if roll < 0.055 and self.recent_phones:
            raw = rng.choice(self.recent_phones)  # a family sharing one number: "ambiguous"
        elif roll < 0.085:
            raw = rng.choice(
                ["+7 (912) 345-67", "12345", "8 (900) ЗВОНИТЬ", "0000000", "+7 999 12", "тел. нет"]
            )
        else:
            raw = _format_phone(rng, plan)
            if rng.random() < 0.01:
                self.recent_phones.append(raw)
        try:
            return {"phone_raw": raw, "phone": normalize_phone(raw, "RU")}
        except InvalidIdentifier:
            return {"phone_raw": raw, "phone": None}

    def _email(self, customer: dict[str, Any]) -> dict[str, Any]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.08:
            return {"email_raw": "", "email": None}
        first, last = translit(customer["first_name"]), translit(customer["last_name"])
        domains = RU_DOMAINS if customer["middle_name"] else EN_DOMAINS
        local = rng.choice(
            [
                f"{first}.{last}",
                f"{last}.{first}",
                f"{first[0]}.{last}",
                f"{last}{rng.randint(1, 99)}",
                f"{first}{rng.randint(1960, 2006)}",
            ]
        )
        local = "".join(ch for ch in local if ch.isascii() and (ch.isalnum() or ch in "._"))
        raw = f"{local}{rng.randint(1, 999)}@{rng.choice(domains)}"
        if rng.random() < 0.15:
            raw = rng.choice([raw.title(), raw.upper(), raw.capitalize()])
        if roll < 0.11:
            raw = rng.choice(
                [
                    raw.replace("@", "@@"),
                    raw.split("@")[0] + "@",
                    raw.replace("@", " "),
                    raw.replace(".", " ", 1).replace("@", " @"),
                ]
            )
        try:
            return {"email_raw": raw, "email": normalize_email(raw)}
        except InvalidIdentifier:
            return {"email_raw": raw, "email": None}

    # --- loyalty data ----------------------------------------------------------------------

    def _cards(self, index: int, registered_at: datetime) -> list[dict[str, Any]]:
        rng = self.rng
        if rng.random() >= 0.8:
            return []
        status = rng.choices(["active", "blocked", "expired"], weights=[90, 6, 4])[0]
        cards = [
            {
                "number": _card_number(self.seed, index, 0),
                "status": status,
                "issued_at": registered_at,
            }
        ]
        if rng.random() < 0.05:  # an old card replaced by the current one
            cards.append(
                {
                    "number": _card_number(self.seed, index, 1),
                    "status": "expired",
                    "issued_at": registered_at - timedelta(days=rng.randint(200, 900)),
                }
            )
        return cards

    def _receipts(self, customer: dict[str, Any]) -> list[dict[str, Any]]:
        rng = self.rng
        # Exponential counts: many occasional buyers, a long tail of regulars; mean as asked.
        count = min(
            int(rng.expovariate(1 / (self.mean_receipts + 0.5))), int(self.mean_receipts * 20)
        )
        if not count:
            return []
        spend = rng.lognormvariate(0, 0.45)  # some customers simply spend more
        start = customer["registered_at"]
        span = max((self.now - start).total_seconds(), 3600)
        store = f"{customer['city']}, магазин {rng.randint(1, 12)}"
        receipts = []
        for _ in range(count):
            self.receipt_seq += 1
            amount = max(29.9, rng.lognormvariate(math.log(1100), 0.85) * spend)
            items = max(1, min(60, int(amount / rng.uniform(180, 650))))
            receipts.append(
                {
                    "number": f"R{self.receipt_seq:09d}",
                    "date": start + timedelta(seconds=rng.uniform(0, span)),
                    "amount": Decimal(f"{amount:.2f}"),
                    "items": items,
                    "store": store,
                }
            )
        return receipts

    def _events(self, customer: dict[str, Any], buyer: bool) -> list[dict[str, Any]]:
        rng = self.rng
        events = []
        uses_app = rng.random() < 0.4
        plan = {
            "app_login": rng.randint(1, 5) if uses_app else 0,
            "push_open": rng.randint(0, 3) if uses_app else 0,
            "visit": rng.randint(0, 2) if buyer else 0,
            "email_open": rng.randint(0, 2) if customer["email"] else 0,
            "coupon_activated": 1 if rng.random() < 0.05 else 0,
        }
        for name in EVENT_KINDS:
            for _ in range(plan[name]):
                occurred = self.now - timedelta(seconds=rng.uniform(0, 180 * 86_400))
                events.append(
                    {
                        "name": name,
                        "occurred_at": max(occurred, customer["registered_at"]),
                        "payload": self._payload(name),
                    }
                )
        return events

    def _payload(self, name: str) -> dict[str, Any]:
        if name == "app_login":
            return {"platform": self.rng.choice(PLATFORMS)}
        if name in {"push_open", "email_open"}:
            return {"campaign": self.rng.choice(CAMPAIGN_TAGS)}
        if name == "coupon_activated":
            return {"coupon": f"CPN{self.rng.randint(1000, 9999)}"}
        return {}


def _format_phone(rng: random.Random, plan: str) -> str:
    """A valid mobile number of the plan's country, written in one of the local habits."""
    if plan == "ru":
        code, rest = (
            rng.choice(
                ["912", "916", "926", "903", "905", "925", "985", "999", "921", "950", "977", "963"]
            ),
            rng.randint(0, 9_999_999),
        )
        d = f"{code}{rest:07d}"
        return rng.choice(
            [
                f"+7 ({d[:3]}) {d[3:6]}-{d[6:8]}-{d[8:]}",
                f"8 {d[:3]} {d[3:6]} {d[6:8]} {d[8:]}",
                f"7{d}",
                d,
                f"8({d[:3]}){d[3:]}",
                f"+7 {d[:3]} {d[3:6]}-{d[6:8]}-{d[8:]}",
                f"8-{d[:3]}-{d[3:6]}-{d[6:8]}-{d[8:]}",
                f"+7{d}",
            ]
        )
    n = rng.randint(0, 9_999_999)
    return {
        "by": f"+375 ({rng.choice(['29', '33', '44'])}) {n // 10000:03d}-{n % 10000 // 100:02d}-"
        f"{n % 100:02d}",
        "kz": f"+7 (7{rng.choice(['01', '05', '07', '47', '77'])}) {n:07d}",
        "uz": f"+998 9{rng.randint(0, 9)} {n:07d}",
        "am": f"+374 9{rng.randint(1, 9)} {n % 1_000_000:06d}",
        "de": f"+49 15{rng.randint(1, 2)}{rng.randint(0, 9)} {n:07d}",
        "us": f"+1 (415) {rng.randint(200, 999)}-{n % 10000:04d}",
    }[plan]


def _card_number(seed: int, index: int, which: int) -> str:
    """A 16-digit card number, unique per (seed, index, which): a fixed bijection of 10^12
    spreads consecutive indexes over the range so numbers do not look sequential."""
    slot = (index * 2 + which + seed * 1_000_003) % 10**12
    return f"7789{slot * 982_451_653 % 10**12:012d}"
