"""``tagbase worker``: runs queued tasks, refuses a backend it cannot serve, stops on SIGTERM."""

from __future__ import annotations

import io
import signal
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django_tasks import TaskResultStatus, task

from tagbase.web.tests import cli_processes as procs

DB_TASKS = {
    "default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "slow"]}
}
IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


@task()
def double(x: int) -> int:
    return x * 2


@override_settings(TASKS=DB_TASKS)
@pytest.mark.django_db(transaction=True)
def test_worker_batch_runs_the_queued_tasks_of_its_queue_only():
    doubled = double.enqueue(21)
    tripled = double.using(queue_name="slow").enqueue(3)
    call_command("worker", "--batch", stdout=io.StringIO(), stderr=io.StringIO())
    doubled.refresh()
    tripled.refresh()
    assert (doubled.status, doubled.return_value) == (TaskResultStatus.SUCCESSFUL, 42)
    assert tripled.status == TaskResultStatus.READY
    call_command("worker", "--batch", "--queue", "slow", stdout=io.StringIO())
    tripled.refresh()
    assert tripled.return_value == 6


@override_settings(TASKS=IMMEDIATE)
def test_worker_refuses_when_tasks_run_inside_the_web_process():
    with pytest.raises(CommandError, match="ImmediateBackend, which runs tasks inside the web"):
        call_command("worker")


@pytest.mark.parametrize("value", ["-1", "soon", "7200"])
def test_worker_rejects_a_bad_interval(value):
    with pytest.raises(CommandError, match="--interval"):
        call_command("worker", "--interval", value)


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on a server")
@pytest.mark.django_db(transaction=True)
def test_sigterm_stops_an_idle_worker_cleanly(tmp_path):
    env = procs.child_env(tmp_path / "data", tmp_path / "tagbase.sqlite3")
    migrate = procs.Child("migrate", "--no-input", "-v", "0", env=env)
    assert migrate.wait(timeout=60) == 0, migrate.output()
    worker = procs.Child("worker", "--interval", "0.2", env=env)
    worker.wait_for_output("Starting worker", 30)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=10) == 0
    assert "shutting down gracefully" in worker.output()
