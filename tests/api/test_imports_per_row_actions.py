"""Per-row add/remove files through the API: a third column (``+`` / ``-``) per row, the report
split per action and per audience, the rejected rows with their column, undo of both actions,
and mode single refusing such a file (docs/imports.md, docs/api.md "Imports")."""

from __future__ import annotations

import csv
import io

import pytest

from tagbase.audiences.models import Audience, Operation
from tagbase.audiences.services import add_customers_to_audience, create_audience
from tagbase.testing import make_customers, system_actor

from .support import API, assert_error
from .test_imports import identity_holds, importer, members, run, upload

pytestmark = pytest.mark.django_db


def test_a_mixed_file_is_previewed_committed_reported_per_audience_and_undone():
    a, b, c, d = make_customers(4)
    vip = create_audience("VIP", actor=system_actor())
    add_customers_to_audience(vip, [a, b], actor=system_actor(), kind="cli")
    client = importer()
    data = f"id;audience;action\n{a};VIP;-\n{c};VIP;+\n{b};VIP;-\n{d};New;add\n{c};Gone;-\n"

    job_id = upload(client, data, mode="per_row", dry_run="true").json()["job_id"]
    assert run(job_id).status == "previewed"
    preview = client.get(f"{API}/imports/{job_id}").json()
    split = {k: preview[k] for k in ("already_member", "added", "not_member", "removed")}
    assert split == {"already_member": 0, "added": 2, "not_member": 1, "removed": 2}
    assert preview["audiences_created"] == ["New"] and identity_holds(preview)
    audiences = {item["name"]: item for item in preview["audiences"]}
    assert [*audiences] == ["Gone", "New", "VIP"]
    assert audiences["VIP"] == {
        "audience_id": vip.pk,
        "name": "VIP",
        "created": False,
        "already_member": 0,
        "added": 1,
        "not_member": 0,
        "removed": 2,
        "operations": [],
    }
    assert (audiences["New"]["audience_id"], audiences["New"]["added"]) == (None, 1)
    assert (audiences["Gone"]["audience_id"], audiences["Gone"]["not_member"]) == (None, 1)
    assert members(vip.pk) == {a, b}  # a preview applies nothing

    assert client.post(f"{API}/imports/{job_id}/commit").status_code == 202
    run(job_id)
    final = client.get(f"{API}/imports/{job_id}").json()
    assert final["status"] == "succeeded"
    assert {k: final[k] for k in split} == split and identity_holds(final)
    audiences = {item["name"]: item for item in final["audiences"]}
    assert len(audiences["VIP"]["operations"]) == 2 and audiences["New"]["created"] is True
    assert sorted(final["operations"]) == sorted(
        op for item in final["audiences"] for op in item["operations"]
    )
    new = Audience.objects.get(name="New")
    assert members(vip.pk) == {c} and members(new.pk) == {d}
    assert not Audience.objects.filter(name="Gone").exists()

    undone = client.post(f"{API}/imports/{job_id}/undo")
    assert undone.status_code == 200 and undone.json()["undone"] is True
    assert members(vip.pk) == {a, b} and members(new.pk) == set()
    ops = Operation.objects.filter(pk__in=final["operations"])
    assert {op.status for op in ops} == {"undone"}


def test_the_rejected_rows_keep_the_third_column_and_name_the_reasons():
    a, b = make_customers(2)
    client = importer()
    data = f"{a};VIP;+\n{a};VIP;-\n{b};VIP;maybe\n999999999;VIP;-\n=1;VIP;+\n"
    job_id = upload(client, data, mode="per_row").json()["job_id"]
    run(job_id)
    report = client.get(f"{API}/imports/{job_id}").json()
    assert report["invalid_by_reason"] == {
        "action_invalid": 1,
        "conflicting_action": 2,
        "not_a_number": 1,
    }
    assert (report["invalid"], report["not_found"], report["rejected_rows"]) == (4, 1, 5)
    assert report["status"] == "succeeded_with_rejections" and identity_holds(report)
    csv_text = b"".join(client.get(f"{API}/imports/{job_id}/rejects.csv").streaming_content)
    rows = list(csv.reader(io.StringIO(csv_text.decode())))[1:]
    assert [r[:3] for r in rows] == [
        ["1", f"{a};VIP;+", "conflicting_action"],
        ["2", f"{a};VIP;-", "conflicting_action"],
        ["3", f"{b};VIP;maybe", "action_invalid"],
        ["4", "999999999;VIP;-", "not_found"],
        ["5", "'=1;VIP;+", "not_a_number"],  # formula-escaped
    ]
    assert "adds this customer" in rows[0][3]


def test_a_remove_import_lets_plus_rows_add():
    a, b = make_customers(2)
    vip = create_audience("VIP", actor=system_actor())
    add_customers_to_audience(vip, [a], actor=system_actor(), kind="cli")
    client = importer()
    job_id = upload(client, f"{a};VIP\n{b};VIP;+\n", mode="per_row", action="remove").json()[
        "job_id"
    ]
    run(job_id)
    report = client.get(f"{API}/imports/{job_id}").json()
    assert (report["action"], report["removed"], report["added"]) == ("remove", 1, 1)
    assert members(vip.pk) == {b}


def test_mode_single_refuses_a_file_with_an_action_column_and_applies_nothing():
    a, b = make_customers(2)
    vip = create_audience("VIP", actor=system_actor())
    client = importer()
    job_id = upload(client, f"{a}\n{b};-\n", audience="VIP").json()["job_id"]
    run(job_id)
    report = client.get(f"{API}/imports/{job_id}").json()
    assert report["status"] == "rejected"
    assert report["error"]["code"] == "ACTION_COLUMN_IN_SINGLE_MODE"
    assert report["error"]["line"] == 2 and "Line 2, column 2" in report["error"]["message"]
    assert report["operations"] == [] and members(vip.pk) == set()
    assert_error(client.get(f"{API}/imports/{job_id}/rejects.csv"), 404, "not_found")
