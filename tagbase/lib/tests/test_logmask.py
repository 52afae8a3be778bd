"""Personal data is masked in log records (tagbase/lib/logmask.py): e-mails and phone numbers in
messages, query strings and tracebacks; dates, times, ids and hashes are left alone."""

from __future__ import annotations

import logging

import pytest

from tagbase.lib import logmask
from tagbase.lib.logmask import mask_personal_data


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("sent to Ivan.Petrov@Example.ORG today", "sent to [email] today"),
        ("phone +7 916 402-17-93 refused", "phone [phone] refused"),
        ("8 (916) 402-17-93", "[phone]"),
        ("89164021793;VIP", "[phone];VIP"),
        ("a: ivan@mail.ru, b: +79035558126", "a: [email], b: [phone]"),
        (
            "GET /api/v1/customers/lookup?id_type=phone&value=%2B79164021793 HTTP/1.1",
            "GET /api/v1/customers/lookup?id_type=phone&value=[phone] HTTP/1.1",
        ),
        ("?id_type=email&value=ivan%40mail.ru", "?id_type=email&value=[email]"),
        # Decoding keeps a literal '+' (a time zone), unlike a form decoder.
        (
            '[06/Dec/2026:06:22:01 +0000] "GET /x?value=%2B79164021793"',
            '[06/Dec/2026:06:22:01 +0000] "GET /x?value=[phone]"',
        ),
    ],
)
def test_contacts_are_masked(text, masked):
    assert mask_personal_data(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "import 12 finished at 2026-12-06 05:55:37: 1000000 rows in 3.2 s",
        "customer 12345 erased by token:erp",
        "sha256 3f0123456789012ab9c0ffee77",
        "job 1234567890123 done; uuid 0b6a3c1e-5f4d-4c8e-9a1b-2c3d4e5f6a7b",
        "GET /api/v1/audiences/17/members?offset=1000000&limit=500 HTTP/1.1 200",
        "100% done",
    ],
)
def test_dates_ids_counts_and_hashes_are_left_alone(text):
    assert mask_personal_data(text) == text


def test_every_record_is_masked_once_installed(caplog):
    # settings.py installs it for every process that loads Tagbase's settings.
    assert isinstance(logging.getLogRecordFactory(), logmask._MaskingFactory)
    log = logging.getLogger("tagbase.tests.logmask")
    with caplog.at_level(logging.INFO, logger="tagbase.tests.logmask"):
        log.info("lookup of %s by %s", "ivan@mail.ru", "token:erp")
        log.info('%(h)s "%(r)s" %(s)s', {"h": "10.0.0.1", "r": "GET /x?p=%2B79164021793", "s": 200})
        try:
            raise ValueError("bad value 8 916 402-17-93")
        except ValueError:
            log.exception("row refused")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[:2] == ["lookup of [email] by token:erp", '10.0.0.1 "GET /x?p=[phone]" 200']
    assert "[phone]" in caplog.records[2].exc_text and "916" not in caplog.records[2].exc_text
    assert "402-17-93" not in caplog.text and "ivan@mail.ru" not in caplog.text


def test_installing_twice_wraps_once():
    factory = logging.getLogRecordFactory()
    logmask.install("RU")
    assert logging.getLogRecordFactory() is factory
