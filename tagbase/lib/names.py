"""Audience names: what counts as the same name, and what is not allowed in one."""

from __future__ import annotations

import unicodedata

MAX_NAME_LENGTH = 200

# Zero-width and bidi-control characters make two names look alike while being different, or
# reorder what a reader sees; none belongs in a name.
_FORBIDDEN = {
    "\u200b",
    "\u200c",
    "\u200d",
    "\u2060",
    "\ufeff",
    "\u202a",
    "\u202b",
    "\u202c",
    "\u202d",
    "\u202e",
    "\u2066",
    "\u2067",
    "\u2068",
    "\u2069",
    "\u200e",
    "\u200f",
    "\u061c",
}


class InvalidName(ValueError):
    """A proposed audience name breaks a rule; ``code`` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def clean_audience_name(raw: str) -> str:
    """Return the display form of a name (NFC, trimmed) or raise ``InvalidName``."""
    if not isinstance(raw, str):
        raise InvalidName("name_type", "The name must be text.")
    name = unicodedata.normalize("NFC", raw).strip()
    if not name:
        raise InvalidName("name_empty", "The name is empty.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidName(
            "name_too_long", f"The name has {len(name)} characters; at most {MAX_NAME_LENGTH}."
        )
    for position, char in enumerate(name, start=1):
        if char in _FORBIDDEN or unicodedata.category(char) in {"Cc", "Cf", "Cs", "Co"}:
            raise InvalidName(
                "name_control_character",
                f"The name has an invisible or control character U+{ord(char):04X} "
                f"at position {position}.",
            )
    return name


def audience_name_key(name: str) -> str:
    """The uniqueness key: trimmed, NFC, case-folded, inner runs of white space folded."""
    folded = unicodedata.normalize("NFC", name).strip().casefold()
    return unicodedata.normalize("NFC", " ".join(folded.split()))
