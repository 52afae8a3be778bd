"""What one record of an import file means: blank, invalid (with a reason), or a candidate.

The documented file shapes (see docs/imports.md):
- mode ``single``: one identifier per record; a record may end with ``;`` or ``.``
  (``123;`` and ``245.`` both mean the identifier without its terminator);
- mode ``per_row``: ``identifier; audience name`` per record, optionally with a third column
  saying whether the row adds or removes (``+`` / ``-``, or ``add`` / ``remove``; empty means the
  import's action), so that one file can add some customers and remove others.
Values are normalised by ``tagbase.lib.identifiers``; audience names by ``tagbase.lib.names``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from tagbase.lib.identifiers import InvalidIdentifier, normalize
from tagbase.lib.names import InvalidName, audience_name_key, clean_audience_name

# Row-level reason codes that this module adds to those of lib.identifiers / lib.names /
# lib.csvread (see docs/imports.md for the full list with messages).
ROW_REASONS = {
    "extra_columns": "The row has more columns than the mode allows.",
    "audience_name_empty": "Per-row mode: the audience name is missing.",
    "action_invalid": "Per-row mode: the third column must be + or - (or add / remove), "
    "or empty for the import's action.",
}

# The third column of a per-row file: a row's own action. Compared after NFKC (full-width
# signs), trimming and case-folding; U+2212 is the minus sign a word processor may put in.
ADD, REMOVE = "+", "-"
SIGNS = {"+": ADD, "add": ADD, "-": REMOVE, "\u2212": REMOVE, "remove": REMOVE}

# First-row words that mark a header line, compared case-insensitively.
HEADER_WORDS = frozenset(
    [
        "id",
        "sc_id",
        "scid",
        "tagbase_id",
        "customer",
        "customer_id",
        "client",
        "client_id",
        "external_id",
        "partner_id",
        "phone",
        "phone_number",
        "telephone",
        "mobile",
        "email",
        "e-mail",
        "mail",
        "card",
        "card_number",
        "identifier",
        "audience",
        "audience_name",
        "tag",
        "target_audience",
        "name",
        "action",
        "sign",
        "+/-",
        "ид",
        "идентификатор",
        "клиент",
        "код",
        "телефон",
        "мобильный",
        "почта",
        "email",
        "эл.почта",
        "карта",
        "номер_карты",
        "аудитория",
        "тег",
        "название",
        "действие",
    ]
)


@dataclass(frozen=True, slots=True)
class Parsed:
    kind: str  # "blank" | "invalid" | "candidate"
    value: str | None = None
    reason: str = ""
    message: str = ""
    target_name: str = ""  # per_row: the audience name as written (NFC, trimmed)
    target_key: str = ""  # per_row: its key
    sign: str | None = None  # per_row: "+" or "-" when the row names its action, else None
    column: int = 0  # kind "single_mode_sign": the 1-based column holding the sign


BLANK = Parsed("blank")


def _trim_trailing_empty(fields: list[str]) -> list[str]:
    end = len(fields)
    while end > 1 and not fields[end - 1].strip():
        end -= 1
    return fields[:end]


def _strip_terminator(value: str) -> str:
    value = value.strip()
    if value[-1:] in {";", "."}:
        value = value[:-1]
    return value


def sign_of(cell: str) -> str | None:
    """``+`` or ``-`` for a cell that names an action (``+``, ``-``, ``add``, ``remove``, any
    case, full-width signs), else None."""
    return SIGNS.get(unicodedata.normalize("NFKC", cell).strip().casefold())


def parse_single(fields: list[str], id_type: str, region: str) -> Parsed:
    # Padding may look like empty columns (a TAB before the id in a TAB-detected file, the
    # ";" terminator): only cells with content count.
    filled = [f for f in fields if f.strip()]
    if len(filled) > 1 and sign_of(filled[-1]) is not None:
        # A per-row add/remove file imported in the wrong mode: the whole file is refused
        # (kind "single_mode_sign"), since its rows mean something this mode cannot do.
        column = max(i for i, f in enumerate(fields) if f.strip()) + 1
        return Parsed("single_mode_sign", column=column, sign=sign_of(filled[-1]))
    if len(filled) > 1:
        return Parsed(
            "invalid",
            reason="extra_columns",
            message=f"Expected one column (the identifier); found {len(filled)}.",
        )
    raw = _strip_terminator(filled[0] if filled else "")
    if not raw.strip():
        return BLANK  # only a terminator (";" or ".") in a file with another delimiter
    try:
        return Parsed("candidate", value=normalize(id_type, raw, phone_region=region))
    except InvalidIdentifier as exc:
        return Parsed("invalid", reason=exc.code, message=exc.message)


def parse_per_row(fields: list[str], id_type: str, region: str) -> Parsed:
    """``identifier; audience name[; + or -]``. The identifier is checked first, then the name,
    then the action, so a row gets the reason of its first bad column."""
    fields = _trim_trailing_empty(fields)
    if len(fields) > 3:
        return Parsed(
            "invalid",
            reason="extra_columns",
            message=f"Expected at most three columns (identifier; audience name; + or -); "
            f"found {len(fields)}.",
        )
    try:
        value = normalize(id_type, fields[0].strip(), phone_region=region)
    except InvalidIdentifier as exc:
        return Parsed("invalid", reason=exc.code, message=exc.message)
    name_field = fields[1] if len(fields) >= 2 else ""
    if not name_field.strip():
        return Parsed(
            "invalid",
            reason="audience_name_empty",
            message="The audience name (second column) is empty.",
        )
    try:
        name = clean_audience_name(name_field)
    except InvalidName as exc:
        return Parsed("invalid", reason=exc.code, message=exc.message)
    sign = None
    if len(fields) == 3 and fields[2].strip():
        sign = sign_of(fields[2])
        if sign is None:
            return Parsed(
                "invalid",
                reason="action_invalid",
                message="The third column must be + or - (or add / remove), or empty.",
            )
    return Parsed(
        "candidate",
        value=value,
        target_name=name,
        target_key=audience_name_key(name),
        sign=sign,
    )


def looks_like_header(fields: list[str]) -> bool:
    """A first row whose cells are all known header words (``phone``, ``Телефон; Аудитория``)."""
    cells = [f.strip().strip(".;").casefold().replace(" ", "_") for f in fields if f.strip()]
    return bool(cells) and all(cell in HEADER_WORDS for cell in cells)


# --- Fast path -------------------------------------------------------------------------------
# Most rows of a real file are a plain id and perhaps a terminator. For those, a single regex
# gives exactly what the full normaliser would (the tests compare both over generated rows),
# at a fraction of the cost; anything else takes the full path above.
_FAST_PATTERNS = {
    "sc_id": re.compile(r"[1-9][0-9]{0,17}"),  # < 2**63 by length alone
    "external_id": re.compile(r"[0-9A-Za-z_\-/:#@]{1,100}"),
    "card": re.compile(r"[0-9A-Z]{1,64}"),
}


def fast_single(id_type: str) -> Callable[[list[str]], str | None] | None:
    """A parser for mode ``single`` that returns the normalised value of a plain row, or None
    when the row needs the full path (it may still be valid)."""
    pattern = _FAST_PATTERNS.get(id_type)
    if pattern is None:
        return None
    match = pattern.fullmatch

    def parse(fields: list[str]) -> str | None:
        if len(fields) == 1 or (len(fields) == 2 and not fields[1]):
            value = fields[0]
        else:
            return None
        if value[-1:] == ".":
            value = value[:-1]
        return value if match(value) else None

    return parse
