"""Customer identifiers: the five types, and how a raw value becomes the value we match on.

Every identifier that enters Tagbase (an imported file, an API call, a customer's own record)
goes through ``normalize`` so that the same customer is found however the value was written.
The rules, in one place:

- Every type: Unicode NFKC (full-width digits become ASCII); surrounding white space and
  zero-width characters are trimmed; a control, bidi or zero-width character left inside is
  rejected; an empty value is rejected.
- Nothing is guessed. A value that looks damaged (a spreadsheet's exponent form ``1.23457E+15``,
  digit grouping ``1 234 567``, a trailing ``.0``, digits from another script) is rejected with a
  reason code and a hint, never "repaired".
- Messages never repeat the value itself (it may be personal data and messages reach logs); the
  rejected-rows report shows the raw value next to the message.

This module is pure: it imports only the standard library and ``phonenumbers``. It is on the
hot path of imports of millions of lines, so each normaliser checks the common shape with one
precompiled pattern first and only works out *why* a value is bad when it is bad.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable
from enum import StrEnum

import phonenumbers
from phonenumbers import PhoneNumber, PhoneNumberFormat
from phonenumbers.phonenumberutil import NumberParseException


class IdType(StrEnum):
    SC_ID = "sc_id"
    EXTERNAL_ID = "external_id"
    PHONE = "phone"
    EMAIL = "email"
    CARD = "card"


ID_TYPE_LABELS: dict[IdType, str] = {
    IdType.SC_ID: "Tagbase ID",
    IdType.EXTERNAL_ID: "Partner system ID",
    IdType.PHONE: "Phone",
    IdType.EMAIL: "E-mail",
    IdType.CARD: "Card number",
}

REASON_CODES: dict[str, str] = {
    "empty": "The value is empty (or only white space).",
    "control_character": "A control, bidi or zero-width character inside the value.",
    "too_long": "The value is longer than the limit for its type.",
    "non_ascii_digit": "A digit from another script (or a superscript/circled digit); "
    "only 0-9 and full-width digits are accepted.",
    "not_a_number": "A Tagbase ID must be a whole number written with the digits 0-9.",
    "leading_zero": "A Tagbase ID never starts with 0; the value was probably altered.",
    "out_of_range": "A Tagbase ID must be between 1 and 9223372036854775807.",
    "spreadsheet_exponent": "A number in exponent form (1.23457E+15): a spreadsheet damaged it.",
    "spreadsheet_grouping": "Digits in groups (1 234 567): a spreadsheet formatted the number.",
    "spreadsheet_decimal": "A number with a decimal part (.0): a spreadsheet formatted it.",
    "phone_invalid": "Not a valid phone number.",
    "email_invalid": "Not a valid e-mail address.",
    "card_invalid": "A card number may contain only letters A-Z, digits, spaces and hyphens.",
}

MAX_SC_ID = 2**63 - 1
MAX_EXTERNAL_ID_LENGTH = 100
MAX_PHONE_LENGTH = 64
MAX_EMAIL_LENGTH = 320
MAX_CARD_LENGTH = 64
DEFAULT_PHONE_REGION = "RU"


class InvalidIdentifier(ValueError):
    """A raw identifier cannot be normalised; ``code`` (a key of REASON_CODES) says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __reduce__(self):  # keep code and message when pickled (task queues, workers)
        return (type(self), (self.code, self.message))


# --- shared cleaning ----------------------------------------------------------------------

# What is trimmed at either end: every character Python calls white space except the ASCII
# separators U+001C-U+001F (control characters, rejected), plus the zero-width characters
# that spreadsheets and web pages leave around values (ZWSP, ZWNJ, ZWJ, WORD JOINER, BOM).
_STRIP = (
    "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
    "\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
    "\u200b\u200c\u200d\u2060\ufeff"
)
_ASCII_STRIP = "\t\n\v\f\r "
_ASCII_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Control (Cc), format (Cf: bidi marks/overrides/isolates, zero-width, soft hyphen...),
# surrogate (Cs), private use (Co), line/paragraph separator (Zl/Zp).
_FORBIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
_FULL_WIDTH_DIGITS = frozenset(chr(code) for code in range(0xFF10, 0xFF1A))


def _describe(char: str) -> str:
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X} {name}".rstrip()


def _find_forbidden(value: str) -> int:
    """Index of the first control/format character in ``value``, or -1."""
    if value.isprintable():  # C-speed: excludes every forbidden category at once
        return -1
    for index, char in enumerate(value):
        if unicodedata.category(char) in _FORBIDDEN_CATEGORIES:
            return index
    return -1


def _control_error(char: str, position: int) -> InvalidIdentifier:
    return InvalidIdentifier(
        "control_character",
        f"The value has an invisible or control character ({_describe(char)}) at position "
        f"{position}; remove it.",
    )


def _empty_error() -> InvalidIdentifier:
    return InvalidIdentifier("empty", "The value is empty.")


def clean_raw(raw: str) -> str:
    """NFKC, trim white space and zero-width characters, reject control characters inside.

    Raises InvalidIdentifier("control_character" | "empty"). Positions in messages are
    1-based and count characters of ``raw`` as given.
    """
    if not isinstance(raw, str):
        raise TypeError(f"an identifier must be str, not {type(raw).__name__}")
    if raw.isascii():  # NFKC is the identity on ASCII
        if raw.isprintable():  # the usual case: no TAB, CR, NUL...
            value = raw.strip(" ")
        else:
            value = raw.strip(_ASCII_STRIP)
            found = _ASCII_CONTROL.search(value)
            if found:
                lead = len(raw) - len(raw.lstrip(_ASCII_STRIP))
                raise _control_error(found.group(), lead + found.start() + 1)
        if not value:
            raise _empty_error()
        return value
    return _clean_unicode(raw)


def _clean_unicode(raw: str) -> str:
    value = raw.strip(_STRIP)
    index = _find_forbidden(value)
    if index >= 0:
        lead = len(raw) - len(raw.lstrip(_STRIP))
        raise _control_error(value[index], lead + index + 1)
    value = unicodedata.normalize("NFKC", value)
    # NFKC can expose new white space at the ends (U+00A8 DIAERESIS becomes SPACE + U+0308).
    value = value.strip(_STRIP)
    index = _find_forbidden(value)
    if index >= 0:
        raise _control_error(value[index], index + 1)
    if not value:
        raise _empty_error()
    return value


def _clean_numeric(raw: str) -> str:
    """clean_raw for the numeric types (sc_id, phone, card), which also reject foreign digits.

    NFKC turns full-width digits into 0-9 (wanted) but also superscript, circled and
    mathematical digits (a footnote mark "12²" would become "122"), and it leaves digits of
    other scripts alone; only 0-9 and full-width digits are accepted.
    """
    value = clean_raw(raw)
    if not raw.isascii():
        _check_digit_script(raw)
    return value


def _check_digit_script(raw: str) -> None:
    for position, char in enumerate(raw, start=1):
        if (
            char not in _FULL_WIDTH_DIGITS
            and not char.isascii()
            and unicodedata.category(char) in ("Nd", "No", "Nl")
        ):
            raise InvalidIdentifier(
                "non_ascii_digit",
                f"The value has a digit from another script or a special digit "
                f"({_describe(char)}) at position {position}; only the digits 0-9 are "
                f"accepted.",
            )


# --- spreadsheet damage (checked only for values that already failed) --------------------

_EXPONENT = re.compile(r"[+-]?[0-9]+(?:[.,][0-9]*)?[eE][+-]?[0-9]+")
_GROUPING = re.compile(r"[+-]?[0-9]{1,3}(?:[ ,.'\u2019][0-9]{3})+")
_DECIMAL = re.compile(r"[+-]?[0-9]+[.,]0+")

_EXPONENT_ERROR = (
    "spreadsheet_exponent",
    "The value looks like a number damaged by a spreadsheet (exponent form such as "
    "1.23457E+15); the digits are lost, export the column as text.",
)
_GROUPING_ERROR = (
    "spreadsheet_grouping",
    "The value has its digits in groups (such as 1 234 567), as a spreadsheet formats "
    "numbers; export the column as text.",
)
_DECIMAL_ERROR = (
    "spreadsheet_decimal",
    "The value ends with a decimal part (such as .0), as a spreadsheet formats numbers; "
    "export the column as text.",
)


def _spreadsheet_damage(value: str) -> InvalidIdentifier | None:
    if _EXPONENT.fullmatch(value):
        return InvalidIdentifier(*_EXPONENT_ERROR)
    if _GROUPING.fullmatch(value):
        return InvalidIdentifier(*_GROUPING_ERROR)
    if _DECIMAL.fullmatch(value):
        return InvalidIdentifier(*_DECIMAL_ERROR)
    return None


def _too_long(limit: int, length: int) -> InvalidIdentifier:
    return InvalidIdentifier(
        "too_long", f"The value has {length} characters; at most {limit} are allowed."
    )


# --- sc_id ---------------------------------------------------------------------------------

_SC_ID = re.compile(r"[1-9][0-9]{0,18}")
_ASCII_DIGITS = re.compile(r"[0-9]+")
_MAX_SC_ID_TEXT = str(MAX_SC_ID)


def normalize_sc_id(raw: str) -> int:
    """A Tagbase customer id: a whole number 1..2**63-1 written with ASCII digits."""
    return int(_sc_id_text(raw))


def _sc_id_text(raw: str) -> str:
    # The usual value is already clean: one regex on the raw text decides it (a non-str raises
    # TypeError here, as clean_raw would).
    if _SC_ID.fullmatch(raw) and (len(raw) < 19 or raw <= _MAX_SC_ID_TEXT):
        return raw
    value = _clean_numeric(raw)
    # Never int()/isdigit() on raw text: both accept digits of other scripts.
    if _SC_ID.fullmatch(value) and (len(value) < 19 or value <= _MAX_SC_ID_TEXT):
        return value
    raise _sc_id_error(value)


def _sc_id_error(value: str) -> InvalidIdentifier:
    if _ASCII_DIGITS.fullmatch(value):
        if value.strip("0") and value[0] == "0":
            return InvalidIdentifier(
                "leading_zero",
                "The value starts with 0; Tagbase IDs never do, so it was probably altered "
                "(or it is a partner system ID).",
            )
        return _out_of_range()
    if value[0] == "-" and _ASCII_DIGITS.fullmatch(value, 1):
        return _out_of_range()
    return _spreadsheet_damage(value) or InvalidIdentifier(
        "not_a_number",
        "The value is not a whole number; a Tagbase ID has only the digits 0-9.",
    )


def _out_of_range() -> InvalidIdentifier:
    return InvalidIdentifier(
        "out_of_range", f"A Tagbase ID is a whole number from 1 to {MAX_SC_ID}."
    )


# --- external_id -----------------------------------------------------------------------------


def normalize_external_id(raw: str) -> str:
    """A partner system's id: trimmed text, case and leading zeros kept ("0012" != "12")."""
    value = clean_raw(raw)
    if len(value) > MAX_EXTERNAL_ID_LENGTH:
        raise _too_long(MAX_EXTERNAL_ID_LENGTH, len(value))
    return value


# --- phone -----------------------------------------------------------------------------------

# Characters a phone may be written with: digits, one leading '+', spaces, ( ) - and '.'.
# Narrower than what phonenumbers accepts on purpose: it reads "89123456789;89123456790" as a
# number with an extension and "доб. 12" as an extension, and converts letters (vanity
# numbers); each of those would silently drop or invent digits.
_PHONE_CHARS = re.compile(r"\+?[0-9 ().\-]+")
_PHONE_SEPARATORS = str.maketrans("", "", " ().-")
# Russian habits, all handled identically by phonenumbers.parse(value, "RU"): +7 / 7 / trunk
# prefix 8 / nothing, followed by the 10-digit national number.
_RU_HABIT = re.compile(r"(?:\+7|[78])?([1-9][0-9]{9})")
_LETTER = re.compile(r"[^\W\d_]")


def normalize_phone(raw: str, region: str = DEFAULT_PHONE_REGION) -> str:
    """A phone number in E.164 (``+79123456789``); numbers without '+' are read in ``region``.

    phonenumbers (9.0.43) itself reads every Russian habit for region RU, including a bare
    11-digit number starting with 7 (it strips the country code when the rest is a valid
    national number) and the trunk prefix 8, so no glue is needed for parsing. The fast path
    below only avoids the cost of a full parse (~25 µs) for those habits; it accepts a value
    only when phonenumbers says the number is valid, and gives what the full parse gives
    (tests check both ways agree).
    """
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"unknown phone region {region!r}")
    value = _clean_numeric(raw)
    if len(value) > MAX_PHONE_LENGTH:
        raise _too_long(MAX_PHONE_LENGTH, len(value))
    if not _PHONE_CHARS.fullmatch(value):
        raise _phone_chars_error(value)
    if region == "RU":
        habit = _RU_HABIT.fullmatch(value.translate(_PHONE_SEPARATORS))
        if habit and phonenumbers.is_valid_number(
            PhoneNumber(country_code=7, national_number=int(habit.group(1)))
        ):
            return "+7" + habit.group(1)
    return _parse_phone(value, region)


def _parse_phone(value: str, region: str) -> str:
    try:
        number = phonenumbers.parse(value, region)
    except NumberParseException:
        raise _phone_invalid("it is not a phone number phonenumbers can read") from None
    if number.extension:
        raise _phone_invalid("it has an extension")
    if not phonenumbers.is_valid_number(number):
        raise _phone_invalid("no such number exists in its country's numbering plan")
    return phonenumbers.format_number(number, PhoneNumberFormat.E164)


def _phone_invalid(why: str) -> InvalidIdentifier:
    return InvalidIdentifier("phone_invalid", f"The value is not a valid phone number: {why}.")


def _phone_chars_error(value: str) -> InvalidIdentifier:
    damage = _spreadsheet_damage(value)
    if damage and damage.code == "spreadsheet_exponent":
        return damage
    if _LETTER.search(value):
        return _phone_invalid("it contains letters")
    if "+" in value[1:]:
        return _phone_invalid("'+' may only come first")
    bad = next((char for char in value if not _PHONE_CHARS.fullmatch(char) and char != "+"), None)
    if bad is None:  # only a '+'
        return _phone_invalid("it has no digits")
    return _phone_invalid(f"it contains the character {_describe(bad)}")


# --- e-mail ----------------------------------------------------------------------------------

_SPACE = re.compile(r"\s")
# Letters, digits, hyphens; a label neither starts nor ends with a hyphen and has 1-63 chars.
_LABEL = r"[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?"
_ASCII_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+{_LABEL}")


def normalize_email(raw: str) -> str:
    """An e-mail address, lower-cased (local part too) with the domain in IDNA ASCII form.

    The product matches e-mails case-insensitively (``Ivan@Mail.ru`` is ``ivan@mail.ru``),
    although RFC 5321 lets a server treat the local part's case as significant: in practice
    no mail provider does, and customers type their address in any case. ``str.lower()``
    rather than ``casefold()``: casefold turns "ß" into "ss", which is a different address.
    The domain uses the standard library's "idna" codec (IDNA 2003).
    """
    value = clean_raw(raw)
    if len(value) > MAX_EMAIL_LENGTH:
        raise _too_long(MAX_EMAIL_LENGTH, len(value))
    if _SPACE.search(value):
        raise _email_invalid("it contains a space")
    local, at, domain = value.partition("@")
    if not at:
        raise _email_invalid("it has no '@'")
    if "@" in domain:
        raise _email_invalid("it has more than one '@'")
    if not local:
        raise _email_invalid("nothing comes before the '@'")
    return f"{_email_local(local)}@{_email_domain(domain)}"


def _email_local(local: str) -> str:
    lowered = local.lower()
    if lowered.isascii():
        return lowered
    # lower() can leave a non-NFKC string; renormalise so the result is a fixed point.
    return unicodedata.normalize("NFKC", lowered)


# A file of e-mails has few distinct domains (mail.ru, gmail.com...): remember their forms.
@functools.lru_cache(maxsize=4096)
def _email_domain(domain: str) -> str:
    if domain.endswith("."):
        domain = domain[:-1]
    if not domain:
        raise _email_invalid("nothing comes after the '@'")
    if "." not in domain:
        raise _email_invalid("the domain has no dot")
    domain = domain.lower()
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii").lower()
        except UnicodeError:
            raise _email_invalid("the domain is not a valid international domain name") from None
    if len(domain) > 253 or not _ASCII_DOMAIN.fullmatch(domain):
        raise _email_invalid(
            "the domain may contain only letters, digits and hyphens in dot-separated parts"
        )
    return domain


def _email_invalid(why: str) -> InvalidIdentifier:
    return InvalidIdentifier("email_invalid", f"The value is not a valid e-mail address: {why}.")


# --- card ------------------------------------------------------------------------------------

_CARD_SEPARATORS = str.maketrans("", "", " -\u2010\u2011\u2012\u2013")
_CARD = re.compile(r"[0-9A-Za-z]+")


def normalize_card(raw: str) -> str:
    """A loyalty card number: spaces and hyphens removed, upper case, leading zeros kept."""
    value = _clean_numeric(raw)
    compact = value.translate(_CARD_SEPARATORS)
    if len(compact) > MAX_CARD_LENGTH:
        raise _too_long(MAX_CARD_LENGTH, len(compact))
    # ASCII check before upper(): "ß".upper() is "SS", which would invent a card number.
    if _CARD.fullmatch(compact):
        return compact.upper()
    raise _card_error(value, compact)


def _card_error(value: str, compact: str) -> InvalidIdentifier:
    if not compact:
        return InvalidIdentifier("card_invalid", "The value has no letters or digits.")
    damage = _spreadsheet_damage(value)
    if damage and damage.code == "spreadsheet_exponent":
        return damage
    bad = next(char for char in compact if not _CARD.fullmatch(char))
    return InvalidIdentifier(
        "card_invalid",
        f"The value has the character {_describe(bad)}; a card number may contain only "
        f"letters A-Z, digits 0-9, spaces and hyphens.",
    )


# --- dispatch --------------------------------------------------------------------------------

_NORMALIZERS: dict[str, Callable[[str], str]] = {
    IdType.SC_ID: _sc_id_text,
    IdType.EXTERNAL_ID: normalize_external_id,
    IdType.EMAIL: normalize_email,
    IdType.CARD: normalize_card,
}


def normalize(id_type: IdType | str, raw: str, *, phone_region: str = DEFAULT_PHONE_REGION) -> str:
    """The normalised value of ``raw`` as an identifier of ``id_type``, always as text.

    Raises InvalidIdentifier for a bad value, ValueError for an unknown ``id_type``.
    """
    if id_type == IdType.PHONE:
        return normalize_phone(raw, phone_region)
    normalizer = _NORMALIZERS.get(id_type)
    if normalizer is None:
        raise ValueError(f"unknown identifier type {id_type!r}; expected one of {_TYPE_LIST}")
    return normalizer(raw)


_TYPE_LIST = ", ".join(IdType)


def parse_id_type(value: str) -> IdType:
    """The IdType named by ``value`` (one of the five values, any case, surrounding spaces ok)."""
    text = value.strip().lower() if isinstance(value, str) else value
    try:
        return IdType(text)
    except ValueError:
        raise ValueError(
            f"unknown identifier type {value!r}; expected one of {_TYPE_LIST}"
        ) from None
