"""Personal data kept out of logs: e-mail addresses and phone numbers in log messages are masked.

Tagbase's own messages never include a customer's contacts (they name ids and counts), but other
code does: Django logs the path of a refused request, a server logs the request line with its
query string (``/customers/lookup?id_type=phone&value=%2B79123456789``), an exception's message
or traceback may hold a value from a file. ``install`` wraps the logging module's record factory,
so every record any logger creates — Tagbase's, Django's, gunicorn's access and error logs,
third parties' — is masked once, before any handler or formatter sees it, whatever the logging
configuration: the message (after ``%`` formatting, also percent-decoded when that reveals
something), the traceback text and the stack information.

- An e-mail address becomes ``[email]``.
- A phone number becomes ``[phone]``: found by phonenumbers' own matcher (the library that
  normalises phones), which accepts only valid numbers and leaves dates, times, ids and hashes
  alone; numbers without a country code are read in the default region.

Pure: the standard library and phonenumbers only.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import phonenumbers

EMAIL_MASK = "[email]"
PHONE_MASK = "[phone]"
# Local part and domain as mail addresses are written in practice (Unicode letters allowed);
# not the rarer characters RFC 5322 also allows (= & ? …), which would swallow a query string.
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DIGIT = re.compile(r"[0-9]")
_MIN_PHONE_DIGITS = 7


def mask_personal_data(text: str, region: str = "RU") -> str:
    """``text`` with e-mail addresses and phone numbers replaced by ``[email]`` and ``[phone]``.
    Percent-encoded text (a URL's query) is decoded when that reveals something to mask."""
    masked = _mask(text, region)
    if "%" in masked:
        decoded = unquote(masked)
        if decoded != masked:
            decoded_masked = _mask(decoded, region)
            if decoded_masked != decoded:
                return decoded_masked
    return masked


def _mask(text: str, region: str) -> str:
    if "@" in text:
        text = _EMAIL.sub(EMAIL_MASK, text)
    if len(_DIGIT.findall(text)) < _MIN_PHONE_DIGITS:
        return text
    found = [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(text, region)]
    for start, end in reversed(found):
        text = text[:start] + PHONE_MASK + text[end:]
    return text


def mask_record(record: logging.LogRecord, region: str = "RU") -> None:
    """Mask a log record in place: its message, traceback text and stack information."""
    try:
        message = record.getMessage()
    except Exception:  # a malformed call (wrong arguments): leave it to the handler to report
        return
    masked = mask_personal_data(message, region)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and not record.exc_text:
        # Formatters use exc_text when it is set, so the traceback is printed masked.
        record.exc_text = "".join(traceback.format_exception(*record.exc_info)).rstrip("\n")
    if record.exc_text:
        record.exc_text = mask_personal_data(record.exc_text, region)
    if record.stack_info:
        record.stack_info = mask_personal_data(record.stack_info, region)


RecordFactory = Callable[..., logging.LogRecord]


class _MaskingFactory:
    """A record factory that masks what the previous one makes (see ``install``)."""

    def __init__(self, previous: RecordFactory, region: str) -> None:
        self.previous = previous
        self.region = region

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.previous(*args, **kwargs)
        mask_record(record, self.region)
        return record


def install(region: str = "RU") -> None:
    """Mask personal data in every log record this process creates from now on. Idempotent:
    installing again only updates the region."""
    current = logging.getLogRecordFactory()
    if isinstance(current, _MaskingFactory):
        current.region = region
        return
    logging.setLogRecordFactory(_MaskingFactory(current, region))
