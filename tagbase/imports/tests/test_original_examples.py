"""The original product's documented example files import exactly as written."""

from __future__ import annotations

import pytest

from tagbase.audiences.models import Audience, Membership
from tagbase.imports.tests.helpers import identity_holds, run_import
from tagbase.testing import make_customer

pytestmark = pytest.mark.django_db


def members_of(name: str) -> set[int]:
    audience = Audience.objects.get(name=name)
    return set(Membership.objects.filter(audience=audience).values_list("customer_id", flat=True))


def test_mode_one_example_with_semicolon_and_period_terminators():
    for sc_id in (123, 124, 125, 245):
        make_customer(sc_id=sc_id)
    job = run_import(
        "123;\n124;\n125;\n245.", mode="single", audience_name="From file", id_type="sc_id"
    )
    assert job.status == "succeeded", job.error_message
    assert (job.rows_read, job.added, job.invalid) == (4, 4, 0)
    assert members_of("From file") == {123, 124, 125, 245}
    assert identity_holds(job)


def test_mode_two_example_assigns_each_customer_its_audience_and_creates_missing_ones():
    for sc_id in (123, 124, 125, 245):
        make_customer(sc_id=sc_id)
    Audience.objects.create(name="Audience 2")
    job = run_import(
        "123; Audience 1\n124; Audience 2\n125; Audience 3\n245; Audience 4",
        mode="per_row",
        id_type="sc_id",
    )
    assert job.status == "succeeded", job.error_message
    assert job.added == 4
    assert sorted(job.audiences_created) == ["Audience 1", "Audience 3", "Audience 4"]
    for n, sc_id in zip((1, 2, 3, 4), (123, 124, 125, 245), strict=True):
        assert members_of(f"Audience {n}") == {sc_id}
    assert identity_holds(job)


def test_importing_the_same_file_twice_adds_nothing_the_second_time():
    for sc_id in (123, 124):
        make_customer(sc_id=sc_id)
    first = run_import("123;\n124;\n", mode="single", audience_name="Twice", id_type="sc_id")
    second = run_import("123;\n124;\n", mode="single", audience_name="Twice", id_type="sc_id")
    assert (first.added, second.added, second.already_member) == (2, 0, 2)
    assert identity_holds(second)
