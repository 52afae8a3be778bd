"""Migration 0006 (per-row add/remove files) keeps what earlier imports recorded: a target of a
remove import becomes a remove target, and the staging table stays WITHOUT ROWID on SQLite."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tagbase.lib.sqlite_tables import is_without_rowid

BEFORE = [("imports", "0005_timings")]
AFTER = [("imports", "0006_per_row_actions")]


@pytest.mark.django_db(transaction=True)
def test_targets_of_earlier_imports_take_their_jobs_action():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    old = executor.loader.project_state(BEFORE).apps
    Job = old.get_model("imports", "ImportJob")
    Target = old.get_model("imports", "ImportTarget")
    common = {"mode": "per_row", "id_type": "sc_id", "file_name": "f.csv", "stored_name": "x"}
    adding = Job.objects.create(action="add", sha256="a", **common)
    removing = Job.objects.create(action="remove", sha256="b", **common)
    Target.objects.create(job=adding, key="vip", name="VIP")
    Target.objects.create(job=removing, key="vip", name="VIP")

    executor = MigrationExecutor(connection)  # a fresh graph, as `migrate` would load it
    executor.migrate(AFTER)

    new = executor.loader.project_state(AFTER).apps
    targets = new.get_model("imports", "ImportTarget").objects.order_by("job_id")
    assert [(t.job_id, t.action, t.changed, t.unchanged) for t in targets] == [
        (adding.pk, "add", 0, 0),
        (removing.pk, "remove", 0, 0),
    ]
    if connection.vendor == "sqlite":
        assert is_without_rowid(connection, "imports_importrow")
