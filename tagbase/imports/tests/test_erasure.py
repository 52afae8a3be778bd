"""Erasing a customer from imports (tagbase/imports/erasure.py, docs/privacy.md): their lines in
stored uploads are emptied in every encoding and line ending, byte for byte elsewhere; staged
rows are masked; rejected-rows reports lose their rows; a job resumed after the erasure still
adds up; a worker holding a job that names the customer blocks the erasure."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from tagbase.accounts.actors import Actor
from tagbase.audiences.models import Membership
from tagbase.customers.erasure import ErasureBlocked
from tagbase.customers.models import Customer
from tagbase.customers.services import erase_customer
from tagbase.imports import erasure, pipeline, services
from tagbase.imports.models import ImportJob, ImportRow, ImportStatus
from tagbase.imports.tests.helpers import identity_holds, run_import
from tagbase.testing import make_customer

pytestmark = pytest.mark.django_db
ACTOR = Actor.system("test")
PHONE = "+79164021793"


def person(**overrides: object) -> Customer:
    fields: dict[str, object] = {
        "phone": PHONE,
        "phone_raw": "8 916 402-17-93",
        "email": "lampa@example.org",
        "email_raw": "Lampa@Example.org",
        "external_id": "erp-40917",
    }
    fields.update(overrides)
    return make_customer(**fields)


def stored(job: ImportJob) -> bytes:
    return (Path(settings.TAGBASE_IMPORT_DIR) / job.stored_name).read_bytes()


def report_lines(job: ImportJob) -> list[str]:
    text = (Path(settings.TAGBASE_IMPORT_DIR) / job.rejects_name).read_text("utf-8")
    return [row[0] for row in csv.reader(io.StringIO(text))][1:]


def upload(data: bytes, **request: object) -> ImportJob:
    req = services.ImportRequest(**request)  # type: ignore[arg-type]
    return services.start_import([data], "f.csv", req, actor=ACTOR, enqueue=False)


@pytest.mark.parametrize(
    ("encoding", "newline"),
    [("utf-8", "\n"), ("utf-8-sig", "\r\n"), ("cp1251", "\r"), ("utf-16", "\r\n")],
)
def test_the_customers_lines_are_emptied_and_every_other_byte_is_kept(encoding, newline):
    erased, other = person(), make_customer(phone="+79035558126")
    lines = [
        "Телефон;Аудитория",
        "8 (916) 402-17-93;Клуб",
        "+7 903 555-81-26;Клуб",
        "89164021793;Клуб",
        "+7 916 402 17 93 доб. 5;Клуб",
        "",
    ]
    data = newline.join(lines).encode(encoding)
    job = upload(data, mode="per_row", id_type="phone")
    erase_customer(erased.pk, actor=ACTOR)
    expected = newline.join([lines[0], "", lines[2], "", "", ""]).encode(encoding)
    assert stored(job) == expected
    assert Customer.objects.filter(pk=other.pk).exists()
    # The file still imports: the emptied lines are blank rows, the other customer is added.
    done = pipeline.run_import_job(job.pk, owner="test")
    assert done is not None and (done.added, done.blank, done.rows_read) == (1, 3, 4)
    assert identity_holds(done)


def test_a_record_spanning_lines_is_emptied_whole_and_line_numbers_stay():
    erased = person()
    # Lines 1-2: one quoted record (a newline inside a value: invalid, and it holds the partner
    # id); line 4: the partner id, valid; lines 5-6: a value that is not theirs.
    data = b'"erp-40917\n(old)";A\nother;A\nerp-40917;A\n"erp-4\n0917";A\n'
    job = upload(data, mode="per_row", id_type="external_id")
    found = erasure.find_customer_records(erasure.ErasedCustomer.of(erased))
    records = found[job.pk]
    assert (records.starts, records.lines, records.tail) == ({1, 4}, {1, 2, 4}, None)
    erase_customer(erased.pk, actor=ACTOR)
    assert stored(job) == b'\n\nother;A\n\n"erp-4\n0917";A\n'


def test_a_last_line_without_a_terminator_and_lines_longer_than_a_read(monkeypatch):
    erased = person()
    monkeypatch.setattr(erasure, "READ_PIECE", 8)  # lines come in pieces; one CRLF is cut
    data = b"1234567\r\n+79035558126\r\n" + b"7" * 40 + b"\r\n8 916 402-17-93"
    job = upload(data, id_type="phone", audience_name="A")
    erase_customer(erased.pk, actor=ACTOR)
    assert stored(job) == b"1234567\r\n+79035558126\r\n" + b"7" * 40 + b"\r\n"


def test_invalid_rows_that_mention_the_customer_go_from_the_file_and_the_report():
    erased = person()
    data = (
        "8 916 402-17-93\n"  # line 1: added
        "+7 916 402-17-93 доб. 5\n"  # 2: invalid, holds the phone
        "Lampa@Example.org\n"  # 3: invalid for phones, holds the e-mail
        "erp-40917\n"  # 4: invalid, holds the partner id
        "+7 916 000-00-00 x\n"  # 5: invalid, someone else
        "+79161112233\n"  # 6: not found
    )
    job = run_import(data, id_type="phone", audience_name="A")
    assert report_lines(job) == ["2", "3", "4", "5", "6"]
    counts = erase_customer(erased.pk, actor=ACTOR).erasure.counts["imports"]
    assert report_lines(ImportJob.objects.get(pk=job.pk)) == ["5", "6"]
    assert stored(job).decode() == "\n\n\n\n+7 916 000-00-00 x\n+79161112233\n"
    assert (counts["lines_emptied"], counts["report_rows_removed"]) == (4, 3)


def test_a_previewed_job_keeps_its_counts_and_applies_without_the_customer():
    erased, other = person(), make_customer(email="mir@example.net")
    job = run_import(
        "lampa@example.org;VIP\nmir@example.net;VIP\nLAMPA@example.org;VIP\n",
        id_type="email",
        mode="per_row",
        dry_run=True,
    )
    assert job.status == ImportStatus.PREVIEWED
    erase_customer(erased.pk, actor=ACTOR)
    rows = {r.line: (r.value, r.raw, r.customer_id) for r in ImportRow.objects.filter(job=job)}
    assert rows[1] == (None, None, erased.pk) and rows[3][:2] == (None, None)
    assert rows[2][0] == "mir@example.net"
    assert report_lines(ImportJob.objects.get(pk=job.pk)) == []
    services.commit_import(job, actor=ACTOR, enqueue=False)
    done = pipeline.run_import_job(job.pk, owner="test")
    assert done is not None and done.is_successful
    # The erased customer no longer exists when the job applies: counted not found.
    assert (done.added, done.not_found, done.duplicate_in_file) == (1, 1, 1)
    assert identity_holds(done)
    assert report_lines(done) == ["3"]  # the duplicate row, its value masked
    vip = done.targets.get().audience
    assert set(Membership.objects.filter(audience=vip).values_list("customer_id", flat=True)) == {
        other.pk
    }


def test_a_job_resumed_after_the_erasure_adds_up(settings):
    settings.TAGBASE_IMPORT_BATCH_ROWS = 2
    erased = person()
    others = [f"+7903555810{n}" for n in range(4)]
    for phone in others:
        make_customer(phone=phone)
    data = "\n".join(["8 916 402-17-93", others[0], others[1], PHONE, others[2], others[3]])
    job = upload(data.encode(), id_type="phone", audience_name="R")
    real = pipeline._commit_batch
    calls = {"n": 0}

    def crash_on_second_batch(*args, **kwargs):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("worker killed")
        return real(*args, **kwargs)

    pipeline._commit_batch = crash_on_second_batch  # type: ignore[assignment]
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.run_import_job(job.pk, owner="w1")
    finally:
        pipeline._commit_batch = real  # type: ignore[assignment]
    job.refresh_from_db()
    assert job.checkpoint_line == 2
    # The dead worker's lease is still live: the erasure waits for it to expire.
    with pytest.raises(ErasureBlocked) as blocked:
        erase_customer(erased.pk, actor=ACTOR)
    assert f"import {job.pk}" in blocked.value.message
    assert Customer.objects.filter(pk=erased.pk).exists()
    ImportJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now())
    erase_customer(erased.pk, actor=ACTOR)
    assert ImportRow.objects.get(job=job, line=1).raw is None  # staged before the crash
    # Should the first worker wake up, it can no longer write what it had read.
    with pytest.raises(pipeline.LeaseLost):
        pipeline._save(ImportJob.objects.get(pk=job.pk), "w1", checkpoint_line=4)
    done = pipeline.run_import_job(job.pk, owner="w2")
    assert done is not None and done.is_successful
    assert identity_holds(done)
    assert (done.rows_read, done.not_found, done.blank) == (6, 1, 1)
    assert done.added == 4


def test_a_stored_file_that_cannot_be_read_is_deleted_when_it_mentions_the_customer():
    erased = person()
    mentions = upload(b"\x00\x01 8 916 402-17-93 \x00", id_type="phone", audience_name="A")
    silent = upload(b"\x00\x01 nothing here \x00", id_type="phone", audience_name="A")
    for job in (mentions, silent):
        done = pipeline.run_import_job(job.pk, owner="test")
        assert done is not None and done.status == ImportStatus.REJECTED
    counts = erase_customer(erased.pk, actor=ACTOR).erasure.counts["imports"]
    assert counts["files_deleted"] == 1
    assert not (Path(settings.TAGBASE_IMPORT_DIR) / mentions.stored_name).exists()
    assert (Path(settings.TAGBASE_IMPORT_DIR) / silent.stored_name).exists()


def test_imports_without_the_customer_are_left_alone():
    erased = person()
    other = make_customer(phone="+79035558126")
    untouched = run_import("+79035558126\n", id_type="phone", audience_name="A")
    before = stored(untouched)
    counts = erase_customer(erased.pk, actor=ACTOR).erasure.counts["imports"]
    assert counts["imports"] == 0 and stored(untouched) == before
    assert ImportJob.objects.get(pk=untouched.pk).added == 1 and other.pk
