"""Reads of customers: resolving identifiers to customers, and the filtered customer list.

Identifier resolution is set-based: the normalised values go to the database a chunk at a time
as ONE list parameter (``lib.sqlbits``), matched with equality on the indexed identifier
columns, so the number of queries grows with the number of chunks, never with the number of
values, and the statement text never holds user data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import F, Lookup, Q, QuerySet
from django.utils import timezone

from tagbase.customers.models import Card, Customer, Gender
from tagbase.lib.identifiers import IdType, InvalidIdentifier, normalize, parse_id_type
from tagbase.lib.sqlbits import chunked, in_list, list_param

# Values per lookup statement. One parameter carries the whole chunk, so the bound is about
# the size of one round trip, not the engine's parameter limit.
RESOLVE_CHUNK = 5_000

# (table, identifier column, customer id column, element type of the list parameter)
_LOOKUPS: dict[IdType, tuple[str, str, str, str]] = {
    IdType.SC_ID: (Customer._meta.db_table, "sc_id", "sc_id", "bigint"),
    IdType.EXTERNAL_ID: (Customer._meta.db_table, "external_id", "sc_id", "text"),
    IdType.PHONE: (Customer._meta.db_table, "phone", "sc_id", "text"),
    IdType.EMAIL: (Customer._meta.db_table, "email", "sc_id", "text"),
    IdType.CARD: (Card._meta.db_table, "number", "customer_id", "text"),
}
# The ORM lookup that finds a customer by a normalised identifier of each type.
_ORM_LOOKUPS = {
    IdType.SC_ID: "sc_id",
    IdType.EXTERNAL_ID: "external_id",
    IdType.PHONE: "phone",
    IdType.EMAIL: "email",
    IdType.CARD: "cards__number",
}


class AmbiguousIdentifier(ValueError):
    """An identifier whose normalised form belongs to more than one customer (a shared phone
    or e-mail). The message does not repeat the value: it may be personal data."""

    def __init__(self, id_type: IdType, count: int) -> None:
        self.id_type = id_type
        self.count = count
        super().__init__(
            f"This {id_type} belongs to {count} customers; use an identifier that names one."
        )


@dataclass
class Rejected:
    value: str
    code: str
    message: str


@dataclass
class Resolution:
    """What a list of raw identifiers resolved to. Every input value is counted exactly once:
    ``len(raw_values) == matched + len(not_found) + len(ambiguous) + len(invalid) +
    duplicates``. The first occurrence of a normalised value counts; later ones are
    ``duplicates`` whatever the first one resolved to."""

    id_type: IdType
    customer_ids: list[int] = field(default_factory=list)
    matched: int = 0
    not_found: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    invalid: list[Rejected] = field(default_factory=list)
    duplicates: int = 0


def _id_type(id_type: IdType | str) -> IdType:
    return id_type if isinstance(id_type, IdType) else parse_id_type(id_type)


def _normalize(id_type: IdType, raw: Any) -> str:
    text = raw if isinstance(raw, str) else ("" if raw is None else str(raw))
    return normalize(id_type, text, phone_region=settings.TAGBASE_DEFAULT_PHONE_REGION)


def match_identifiers(id_type: IdType | str, values: Sequence[str]) -> dict[str, list[int]]:
    """Normalised values of one type → the ids of the customers holding each (sorted).

    Values matching nobody are absent. One query per ``RESOLVE_CHUNK`` values."""
    kind = _id_type(id_type)
    table, column, customer_column, cast = _LOOKUPS[kind]
    sql = (
        f"SELECT {column}, {customer_column} FROM {table} WHERE {in_list(connection, column, cast)}"
    )
    found: dict[str, list[int]] = {}
    for part in chunked(list(values), RESOLVE_CHUNK):
        params = [int(v) for v in part] if kind == IdType.SC_ID else list(part)
        with connection.cursor() as cur:
            cur.execute(sql, [list_param(connection, params)])
            for value, customer_id in cur.fetchall():
                found.setdefault(str(value), []).append(int(customer_id))
    for ids in found.values():
        ids.sort()
    return found


def resolve_identifiers(id_type: IdType | str, raw_values: Sequence[str]) -> Resolution:
    """Resolve raw identifiers of one type to customers, keeping every value's outcome.

    Values are normalised with ``lib.identifiers`` (phones in the default region of
    settings.TAGBASE_DEFAULT_PHONE_REGION). Reads only; one query per chunk of values.
    """
    kind = _id_type(id_type)
    result = Resolution(id_type=kind)
    first_raw: dict[str, str] = {}  # normalised value -> its first raw form, in input order
    for raw in raw_values:
        try:
            value = _normalize(kind, raw)
        except InvalidIdentifier as exc:
            result.invalid.append(Rejected(str(raw), exc.code, exc.message))
            continue
        if value in first_raw:
            result.duplicates += 1
        else:
            first_raw[value] = raw
    found = match_identifiers(kind, list(first_raw))
    ids: set[int] = set()
    for value, raw in first_raw.items():
        owners = found.get(value)
        if not owners:
            result.not_found.append(raw)
        elif len(owners) > 1:
            result.ambiguous.append(raw)
        else:
            result.matched += 1
            ids.add(owners[0])
    result.customer_ids = sorted(ids)
    return result


def find_customer(id_type: IdType | str, raw: str) -> Customer | None:
    """The one customer a raw identifier names, or None.

    Raises InvalidIdentifier when ``raw`` cannot be normalised and AmbiguousIdentifier when it
    names several customers. One query."""
    kind = _id_type(id_type)
    value: Any = _normalize(kind, raw)
    if kind == IdType.SC_ID:
        value = int(value)
    found = list(Customer.objects.filter(**{_ORM_LOOKUPS[kind]: value})[:2])
    if len(found) > 1:
        count = Customer.objects.filter(**{_ORM_LOOKUPS[kind]: value}).count()
        raise AmbiguousIdentifier(kind, count)
    return found[0] if found else None


# --- the customer list ----------------------------------------------------------------------


class InvalidFilter(ValueError):
    """A filter value the list cannot use; ``field`` names the filter, ``message`` says why in
    words the UI can show next to it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# Public filter names with their labels (for forms and the API documentation).
FILTERS: dict[str, str] = {
    "gender": "Gender (m, f or unknown)",
    "city": "City contains",
    "country": "Country is",
    "has_phone": "Has a valid phone (yes/no)",
    "has_email": "Has a valid e-mail (yes/no)",
    "registered_from": "Registered on or after (YYYY-MM-DD)",
    "registered_to": "Registered on or before (YYYY-MM-DD)",
    "birth_from": "Born on or after (YYYY-MM-DD)",
    "birth_to": "Born on or before (YYYY-MM-DD)",
    "age_min": "Age at least (years)",
    "age_max": "Age at most (years)",
    "receipts_min": "Receipts at least",
    "receipts_max": "Receipts at most",
    "total_min": "Total spent at least",
    "total_max": "Total spent at most",
    "last_receipt_days_max": "Last receipt at most N days ago",
}
_MAX_Q_LENGTH = 320
_BOOLS = {"1": True, "true": True, "yes": True, "on": True,
          "0": False, "false": False, "no": False, "off": False}  # fmt: skip
_INT = re.compile(r"[0-9]{1,9}")
_DECIMAL = re.compile(r"-?[0-9]{1,14}(?:[.,][0-9]{1,2})?")


def customer_list(*, q: str = "", filters: Mapping[str, str] | None = None) -> QuerySet[Customer]:
    """Customers matching a search text and filters, ordered by sc_id.

    ``q`` is tried as every identifier type it normalises to (exact matches on the indexed
    identifier columns) and, when it could be a name, as a case-insensitive prefix of the last
    or first name. ``filters`` keys are those of FILTERS; blank values are ignored, other keys
    are ignored (so a form's whole query string can be passed). A bad value raises
    InvalidFilter. Reads only; the result is lazy.
    """
    qs = Customer.objects.select_related("stats")
    query = (q or "").strip()
    if query:
        qs = qs.filter(_search(query[:_MAX_Q_LENGTH]))
    for name, value in (filters or {}).items():
        text = str(value).strip() if value is not None else ""
        if name in _FILTER_PARSERS and text:
            if not text.isprintable():
                raise InvalidFilter(name, "Remove the control or invisible characters.")
            qs = qs.filter(_FILTER_PARSERS[name](name, text))
    return qs.order_by("sc_id")


def _search(query: str) -> Q:
    condition = Q(pk__in=[])  # matches nothing; OR-ed with what the text can mean
    for kind, lookup in _ORM_LOOKUPS.items():
        try:
            value: Any = _normalize(kind, query)
        except InvalidIdentifier:
            continue
        if kind == IdType.SC_ID:
            condition |= Q(sc_id=int(value))
        elif kind == IdType.CARD:
            # A subquery, not a join: a join would repeat a customer with several cards.
            condition |= Q(sc_id__in=Card.objects.filter(number=value).values("customer_id"))
        else:
            condition |= Q(**{lookup: value})
    if _could_be_name(query):
        condition |= _ci_match("last_name", query, prefix=True)
        condition |= _ci_match("first_name", query, prefix=True)
    return condition


class _Glob(Lookup):
    """SQLite ``GLOB``: case-sensitive wildcard match, used with a pattern that lists both
    cases of every letter, because SQLite's LIKE folds only ASCII letters (``петербург``
    would not find ``Петербург``)."""

    lookup_name = "tagbase_glob"

    def as_sql(self, compiler, connection):  # type: ignore[no-untyped-def]
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} GLOB {rhs}", [*lhs_params, *rhs_params]


def _glob_pattern(text: str) -> str:
    out = []
    for char in text:
        lower, upper = char.lower(), char.upper()
        if char in "*?[]":
            out.append(f"[{char}]")
        elif lower != upper and len(lower) == 1 and len(upper) == 1:
            out.append(f"[{lower}{upper}]")
        else:
            out.append(char)
    return "".join(out)


def _ci_match(column: str, text: str, *, prefix: bool) -> Q:
    """Case-insensitive "contains" (or "starts with") for any alphabet on both engines."""
    if connection.vendor != "sqlite":
        return Q(**{f"{column}__{'istartswith' if prefix else 'icontains'}": text})
    pattern = _glob_pattern(text) + "*"
    return Q(_Glob(F(column), pattern if prefix else "*" + pattern))


def _could_be_name(query: str) -> bool:
    # Names have no digits and no '@'; skipping the name branch for phones, ids and e-mails
    # keeps those searches on the identifier indexes (a prefix test on names cannot use them).
    # Nor control characters: no name holds one, and PostgreSQL refuses NUL in a parameter.
    return query.isprintable() and not any(ch.isdigit() or ch == "@" for ch in query)


# --- filter parsers: (filter name, non-blank text) -> Q --------------------------------------


def _bool(name: str, text: str) -> bool:
    try:
        return _BOOLS[text.lower()]
    except KeyError:
        raise InvalidFilter(name, "Use yes or no.") from None


def _whole(name: str, text: str) -> int:
    if not _INT.fullmatch(text):
        raise InvalidFilter(name, "Use a whole number, 0 or more.")
    return int(text)


def _money(name: str, text: str) -> Decimal:
    try:
        if _DECIMAL.fullmatch(text):
            return Decimal(text.replace(",", "."))
    except InvalidOperation:
        pass
    raise InvalidFilter(name, "Use an amount such as 1500 or 1500.50.")


def _day(name: str, text: str) -> date:
    try:
        if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise InvalidFilter(name, "Use a date written YYYY-MM-DD.")


def _local_midnight(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time()))


def _years_before(today: date, years: int) -> date:
    try:
        return today.replace(year=today.year - years)
    except ValueError:  # 29 February in a year that has none
        return today.replace(year=today.year - years, day=28)


def _gender(name: str, text: str) -> Q:
    genders = {"m": Gender.MALE, "male": Gender.MALE, "м": Gender.MALE,
               "f": Gender.FEMALE, "female": Gender.FEMALE, "ж": Gender.FEMALE,
               "unknown": Gender.UNKNOWN, "u": Gender.UNKNOWN}  # fmt: skip
    if text.lower() not in genders:
        raise InvalidFilter(name, "Use m, f or unknown.")
    return Q(gender=genders[text.lower()])


def _has_contact(column: str) -> Callable[[str, str], Q]:
    def parse(name: str, text: str) -> Q:
        present = Q(**{f"{column}__isnull": False})
        return present if _bool(name, text) else ~present

    return parse


def _registered_from(name: str, text: str) -> Q:
    return Q(registered_at__gte=_local_midnight(_day(name, text)))


def _registered_to(name: str, text: str) -> Q:
    return Q(registered_at__lt=_local_midnight(_day(name, text) + timedelta(days=1)))


def _age_min(name: str, text: str) -> Q:
    # At least N years old: born on or before today's date N years ago.
    return Q(birth_date__lte=_years_before(timezone.localdate(), _whole(name, text)))


def _age_max(name: str, text: str) -> Q:
    # At most N years old: not yet N+1, i.e. born after today's date N+1 years ago.
    years = _whole(name, text) + 1
    if years > 200:
        raise InvalidFilter(name, "Use an age of at most 199.")
    return Q(birth_date__gt=_years_before(timezone.localdate(), years))


def _at_least(column: str, parse: Callable[[str, str], Any]) -> Callable[[str, str], Q]:
    # A customer without receipts has no stats row and counts as 0 receipts, 0 spent.
    def build(name: str, text: str) -> Q:
        bound = parse(name, text)
        q = Q(**{f"stats__{column}__gte": bound})
        return q | Q(stats__isnull=True) if bound <= 0 else q

    return build


def _at_most(column: str, parse: Callable[[str, str], Any]) -> Callable[[str, str], Q]:
    def build(name: str, text: str) -> Q:
        bound = parse(name, text)
        q = Q(**{f"stats__{column}__lte": bound})
        return q | Q(stats__isnull=True) if bound >= 0 else q

    return build


def _last_receipt_days_max(name: str, text: str) -> Q:
    since = timezone.now() - timedelta(days=_whole(name, text))
    return Q(stats__last_receipt_at__gte=since)


_FILTER_PARSERS: dict[str, Callable[[str, str], Q]] = {
    "gender": _gender,
    "city": lambda name, text: _ci_match("city", text, prefix=False),
    "country": lambda name, text: Q(country__iexact=text),
    "has_phone": _has_contact("phone"),
    "has_email": _has_contact("email"),
    "registered_from": _registered_from,
    "registered_to": _registered_to,
    "birth_from": lambda name, text: Q(birth_date__gte=_day(name, text)),
    "birth_to": lambda name, text: Q(birth_date__lte=_day(name, text)),
    "age_min": _age_min,
    "age_max": _age_max,
    "receipts_min": _at_least("receipt_count", _whole),
    "receipts_max": _at_most("receipt_count", _whole),
    "total_min": _at_least("total_amount", _money),
    "total_max": _at_most("total_amount", _money),
    "last_receipt_days_max": _last_receipt_days_max,
}
