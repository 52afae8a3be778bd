"""Parsing one input row (a CSV line or an API object) of customers, receipts or events.

Every parser either returns clean values ready for the model or raises ``RowProblems`` listing
each bad field (column, code, sentence). Messages never repeat the value: it may be personal
data, and reports reach logs. Nothing is guessed: a value that does not have the documented
form is refused, not repaired.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.utils import timezone

from tagbase.customers.models import Gender
from tagbase.customers.reports import FileRejected, RowProblems
from tagbase.lib.identifiers import (
    IdType,
    InvalidIdentifier,
    normalize_card,
    normalize_email,
    normalize_external_id,
    normalize_phone,
    normalize_sc_id,
)

ATTR_PREFIX = "attr."
CUSTOMER_COLUMNS = (
    "external_id", "last_name", "first_name", "middle_name", "gender", "birth_date",
    "country", "city", "registered_at", "phone", "email", "card",
)  # fmt: skip
RECEIPT_COLUMNS = ("external_id", "sc_id", "number", "date", "amount", "items", "store")
EVENT_COLUMNS = ("external_id", "sc_id", "name", "occurred_at", "payload")
CUSTOMER_REFS = ("sc_id", "external_id")

_TEXT_LIMITS = {"last_name": 100, "first_name": 100, "middle_name": 100, "country": 100,
                "city": 100}  # fmt: skip
_GENDERS = {"m": Gender.MALE, "male": Gender.MALE, "м": Gender.MALE,
            "f": Gender.FEMALE, "female": Gender.FEMALE, "ж": Gender.FEMALE,
            "": Gender.UNKNOWN}  # fmt: skip
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?"
)
_AMOUNT = re.compile(r"[0-9]{1,12}(?:[.,][0-9]{1,2})?")
_COUNT = re.compile(r"[0-9]{1,10}")
MAX_ITEMS = 2_147_483_647  # PositiveIntegerField on both engines
PHONE_RAW_MAX = 64
EMAIL_RAW_MAX = 320


class Problem(Exception):
    def __init__(self, field_name: str, code: str, message: str) -> None:
        super().__init__(message)
        self.item = (field_name, code, message)


# --- columns ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Columns:
    """Input keys mapped to canonical names (``attr.<name>`` keeps the attribute name)."""

    canonical: dict[str, str]

    @property
    def names(self) -> set[str]:
        return set(self.canonical.values())


def _canonical(key: str, known: tuple[str, ...], attrs: bool) -> str | None:
    name = str(key).strip()
    if not name.isprintable():  # a control character in a column name is never meant
        return None
    lowered = name.lower()
    if lowered in known:
        return lowered
    if attrs and lowered.startswith(ATTR_PREFIX) and name[len(ATTR_PREFIX) :].strip():
        return ATTR_PREFIX + name[len(ATTR_PREFIX) :].strip()
    return None


@lru_cache(maxsize=256)
def _columns(keys: tuple[str, ...], kind: str) -> Columns:
    known = {"customers": CUSTOMER_COLUMNS, "receipts": RECEIPT_COLUMNS, "events": EVENT_COLUMNS}
    allowed = known[kind]
    mapping: dict[str, str] = {}
    unknown: list[str] = []
    for key in keys:
        name = _canonical(key, allowed, attrs=kind == "customers")
        if name is None:
            unknown.append(str(key))
        elif name in mapping.values():
            raise FileRejected("header_invalid", f"The column {name!r} appears more than once.")
        else:
            mapping[key] = name
    if unknown:
        extra = " or attr.<name>" if kind == "customers" else ""
        raise FileRejected(
            "unknown_columns",
            f"Unknown column(s): {', '.join(repr(u) for u in unknown)}. "
            f"Allowed: {', '.join(allowed)}{extra}.",
        )
    _check_required(mapping.values(), kind)
    return Columns(mapping)


def _check_required(names: Iterable[str], kind: str) -> None:
    present = set(names)
    required = {"receipts": ("number", "date", "amount"), "events": ("name",)}.get(kind, ())
    missing = [n for n in required if n not in present]
    if missing:
        raise FileRejected("missing_columns", f"Required column(s) missing: {', '.join(missing)}.")
    if kind != "customers" and not present & set(CUSTOMER_REFS):
        raise FileRejected(
            "missing_columns", "A column naming the customer is required: sc_id or external_id."
        )


def columns_for(keys: Iterable[str], kind: str) -> Columns:
    """Check the keys of a row (or a file's header) for ``kind`` (customers, receipts, events).
    Raises FileRejected naming unknown, repeated or missing columns."""
    return _columns(tuple(keys), kind)


# --- values -------------------------------------------------------------------------------


def as_text(value: Any, field_name: str) -> str:
    """The value as trimmed text; API callers may send numbers and dates as JSON values."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool) or not isinstance(value, int | float | Decimal | date):
        raise Problem(field_name, "type_invalid", f"{field_name} must be text.")
    else:
        text = value.isoformat() if isinstance(value, date) else str(value)
    if "\x00" in text:
        raise Problem(field_name, "control_character", f"{field_name} contains a NUL character.")
    return text.strip()


def plain_text(value: Any, field_name: str, max_length: int) -> str:
    text = as_text(value, field_name)
    if len(text) > max_length:
        raise Problem(
            field_name,
            "too_long",
            f"{field_name} has {len(text)} characters; at most {max_length} are allowed.",
        )
    return text


def parse_gender(value: Any) -> str:
    text = as_text(value, "gender").lower()
    if text in _GENDERS:
        return str(_GENDERS[text])
    raise Problem("gender", "gender_invalid", "gender must be one of m, f, male, female, м, ж.")


def parse_date(value: Any, field_name: str) -> date | None:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    text = as_text(value, field_name)
    if not text:
        return None
    try:
        if _DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise Problem(
        field_name, "date_invalid", f"{field_name} must be a date written YYYY-MM-DD (1985-03-17)."
    )


def parse_datetime(value: Any, field_name: str) -> datetime | None:
    """ISO 8601 date or date-time; without an offset it is read in the server's time zone
    (settings.TIME_ZONE), and a date alone means midnight there."""
    if isinstance(value, datetime):
        parsed = value
    else:
        text = as_text(value, field_name)
        if not text:
            return None
        try:
            if not _DATETIME.fullmatch(text):
                raise ValueError(text)
            parsed = (
                datetime.combine(date.fromisoformat(text), time())
                if len(text) == 10
                else datetime.fromisoformat(text)
            )
        except ValueError:
            raise Problem(
                field_name,
                "datetime_invalid",
                f"{field_name} must be an ISO 8601 date or date-time "
                "(2024-05-17 or 2024-05-17T14:30:00+03:00).",
            ) from None
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


def parse_amount(value: Any, field_name: str = "amount") -> Decimal:
    text = as_text(value, field_name)
    if _AMOUNT.fullmatch(text):
        return Decimal(text.replace(",", "."))
    if not text:
        raise Problem(field_name, "required", f"{field_name} is required.")
    raise Problem(
        field_name,
        "amount_invalid",
        f"{field_name} must be a non-negative amount with at most 2 decimals and 12 digits "
        "before the point (1234.50 or 1234,50), without spaces or currency signs.",
    )


def parse_count(value: Any, field_name: str) -> int | None:
    text = as_text(value, field_name)
    if not text:
        return None
    if _COUNT.fullmatch(text) and int(text) <= MAX_ITEMS:
        return int(text)
    raise Problem(field_name, "count_invalid", f"{field_name} must be a whole number >= 0.")


def parse_json_object(value: Any, field_name: str) -> dict[str, Any]:
    if isinstance(value, Mapping):
        obj = dict(value)
    else:
        text = as_text(value, field_name)
        if not text:
            return {}
        try:
            obj = json.loads(text)
        except ValueError:
            raise Problem(field_name, "json_invalid", f"{field_name} is not valid JSON.") from None
    if not isinstance(obj, dict):
        raise Problem(field_name, "json_invalid", f"{field_name} must be a JSON object.")
    _check_json(obj, field_name)
    return obj


def _check_json(obj: Any, field_name: str) -> None:
    # PostgreSQL's jsonb refuses the NUL character; refuse it on both engines alike.
    try:
        dumped = json.dumps(obj, ensure_ascii=True, allow_nan=False)
    except (TypeError, ValueError):
        raise Problem(field_name, "json_invalid", f"{field_name} is not valid JSON.") from None
    if "\\u0000" in dumped:
        raise Problem(field_name, "control_character", f"{field_name} contains a NUL character.")


def identifier(value: Any, field_name: str, normalizer: Callable[[str], Any]) -> Any:
    try:
        return normalizer(as_text(value, field_name))
    except InvalidIdentifier as exc:
        raise Problem(field_name, exc.code, f"{field_name}: {exc.message}") from None


# --- customers ----------------------------------------------------------------------------


@dataclass
class CustomerRow:
    """A valid customer row. ``values`` holds model fields for the columns present only."""

    line: int
    external_id: str | None
    values: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, Any] = field(default_factory=dict)  # None value removes the key
    card: str | None = None


def parse_customer_row(line: int, row: Mapping[str, Any], columns: Columns) -> CustomerRow:
    parsed = CustomerRow(line=line, external_id=None)
    problems: list[tuple[str, str, str]] = []
    for key, name in columns.canonical.items():
        try:
            _customer_value(parsed, name, row[key])
        except Problem as exc:
            problems.append(exc.item)
    if problems:
        raise RowProblems(problems)
    return parsed


def _customer_value(parsed: CustomerRow, name: str, value: Any) -> None:
    if name in _TEXT_LIMITS:
        parsed.values[name] = plain_text(value, name, _TEXT_LIMITS[name])
    elif name == "external_id":
        text = as_text(value, name)
        parsed.external_id = identifier(text, name, normalize_external_id) if text else None
    elif name == "gender":
        parsed.values["gender"] = parse_gender(value)
    elif name == "birth_date":
        parsed.values["birth_date"] = _birth_date(value)
    elif name == "registered_at":
        parsed.values["registered_at"] = _registered_at(value)
    elif name == "phone":
        parsed.values.update(_contact(value, "phone", PHONE_RAW_MAX, _phone))
    elif name == "email":
        parsed.values.update(_contact(value, "email", EMAIL_RAW_MAX, normalize_email))
    elif name == "card":
        text = as_text(value, name)
        parsed.card = identifier(text, name, normalize_card) if text else None
    else:
        parsed.attributes[name[len(ATTR_PREFIX) :]] = _attribute(value, name)


def _birth_date(value: Any) -> date | None:
    born = parse_date(value, "birth_date")
    if born is not None and born > timezone.localdate():
        raise Problem("birth_date", "date_in_future", "birth_date is in the future.")
    return born


def _registered_at(value: Any) -> datetime:
    registered = parse_datetime(value, "registered_at")
    if registered is None:
        raise Problem("registered_at", "required", "registered_at cannot be emptied.")
    return registered


def _phone(raw: str) -> str:
    return normalize_phone(raw, settings.TAGBASE_DEFAULT_PHONE_REGION)


def _contact(
    value: Any, name: str, raw_max: int, normalizer: Callable[[str], str]
) -> dict[str, Any]:
    """A contact keeps what was sent (``<name>_raw``) and its normalised form, or None when it
    is invalid: an invalid contact is a warning on the profile, not a reason to drop the row."""
    raw = as_text(value, name)
    try:
        normal: str | None = normalizer(raw) if raw else None
    except InvalidIdentifier:
        normal = None
    return {f"{name}_raw": raw[:raw_max], name: normal}


def _attribute(value: Any, name: str) -> Any:
    if isinstance(value, str):
        text = as_text(value, name)
        return text or None
    if value is not None:
        _check_json(value, name)
    return value


# --- receipts and events ------------------------------------------------------------------


@dataclass
class RefRow:
    """A row that names a customer by ``ref_type`` (sc_id or external_id)."""

    line: int
    ref_type: IdType
    ref: str
    values: dict[str, Any] = field(default_factory=dict)


def _customer_ref(row: Mapping[str, Any], columns: Columns) -> tuple[IdType, str]:
    given = {
        name: as_text(row[key], name)
        for key, name in columns.canonical.items()
        if name in CUSTOMER_REFS
    }
    given = {name: text for name, text in given.items() if text}
    if not given:
        raise Problem(
            "sc_id" if "sc_id" in columns.names else "external_id",
            "customer_missing",
            "sc_id or external_id must name the customer; it is empty.",
        )
    if len(given) > 1:
        raise Problem("sc_id", "customer_ref_both", "Give either sc_id or external_id, not both.")
    [(name, text)] = given.items()
    if name == "sc_id":
        return IdType.SC_ID, str(identifier(text, name, normalize_sc_id))
    return IdType.EXTERNAL_ID, identifier(text, name, normalize_external_id)


def parse_receipt_row(line: int, row: Mapping[str, Any], columns: Columns) -> RefRow:
    return _parse_ref_row(line, row, columns, _receipt_value)


def parse_event_row(line: int, row: Mapping[str, Any], columns: Columns) -> RefRow:
    return _parse_ref_row(line, row, columns, _event_value)


def _parse_ref_row(
    line: int,
    row: Mapping[str, Any],
    columns: Columns,
    parse_value: Callable[[dict[str, Any], str, Any], None],
) -> RefRow:
    problems: list[tuple[str, str, str]] = []
    ref: tuple[IdType, str] | None = None
    values: dict[str, Any] = {}
    try:
        ref = _customer_ref(row, columns)
    except Problem as exc:
        problems.append(exc.item)
    for key, name in columns.canonical.items():
        try:
            parse_value(values, name, row[key])
        except Problem as exc:
            problems.append(exc.item)
    if problems or ref is None:
        raise RowProblems(problems)
    return RefRow(line, ref[0], ref[1], values)


def _receipt_value(values: dict[str, Any], name: str, value: Any) -> None:
    if name == "number":
        number = plain_text(value, name, 64)
        if not number:
            raise Problem(name, "required", "number is required.")
        values[name] = number
    elif name == "date":
        when = parse_datetime(value, name)
        if when is None:
            raise Problem(name, "required", "date is required.")
        values[name] = when
    elif name == "amount":
        values[name] = parse_amount(value)
    elif name == "items":
        count = parse_count(value, name)
        values[name] = 1 if count is None else count
    elif name == "store":
        values[name] = plain_text(value, name, 100)


def _event_value(values: dict[str, Any], name: str, value: Any) -> None:
    if name == "name":
        event_name = plain_text(value, name, 100)
        if not event_name:
            raise Problem(name, "required", "name is required.")
        values[name] = event_name
    elif name == "occurred_at":
        values[name] = parse_datetime(value, name) or timezone.now()
    elif name == "payload":
        values[name] = parse_json_object(value, name)
