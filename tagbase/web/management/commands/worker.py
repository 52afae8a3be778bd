"""``tagbase worker``: run background tasks (imports, segment operations, campaign batches).

A thin wrapper around django-tasks-db's ``db_worker``: that worker already stops cleanly on
SIGTERM and SIGINT (at once when idle, after the current task otherwise; a second signal stops
it at once). Any number of workers may run on any number of machines against one database.
"""

from __future__ import annotations

import argparse
import threading
import time

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connections
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
from django_tasks_db import DatabaseBackend

from tagbase.web.sweeper import start_sweeper


def backend_problem() -> str | None:
    """Why a worker would have nothing to do with the configured task backend, or None."""
    backend = task_backends[DEFAULT_TASK_BACKEND_ALIAS]
    if isinstance(backend, DatabaseBackend):
        return None
    return (
        f"The task backend is {type(backend).__name__}, which runs tasks inside the web "
        "process (TAGBASE_TASKS_IMMEDIATE is on); a worker has nothing to do."
    )


def _interval(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {value!r}") from None
    if not 0 <= number <= 3600:
        raise argparse.ArgumentTypeError(f"must be between 0 and 3600 seconds, got {value}")
    return number


class Command(BaseCommand):
    help = "Run a background worker until stopped (SIGTERM or Ctrl-C stops it cleanly)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--queue",
            default="default",
            help="Queue(s) to take tasks from, comma-separated, or * for all (default: default).",
        )
        parser.add_argument(
            "--interval",
            type=_interval,
            default=1.0,
            help="Seconds to wait between polls when the queue is empty (default: 1).",
        )
        parser.add_argument(
            "--batch", action="store_true", help="Run the tasks waiting now, then exit."
        )

    def handle(self, *args: object, **options: object) -> None:
        problem = backend_problem()
        if problem:
            raise CommandError(problem)
        stop = threading.Event()
        start_sweeper(stop)  # re-enqueues jobs whose worker died (see tagbase/web/sweeper.py)
        try:
            self._work(options)
        finally:
            stop.set()

    def _work(self, options: dict[str, object]) -> None:
        """Run the task loop; when the database goes away (a restart, a dropped connection),
        wait and start it again instead of exiting, so a supervisor-less worker survives."""
        pause = 1.0
        while True:
            try:
                self._run_loop(options)
                return  # stopped by a signal, or --batch finished
            except DatabaseError as exc:
                if options["batch"]:
                    raise
                self.stderr.write(
                    f"worker: database unavailable ({exc.__class__.__name__}); "
                    f"retrying in {pause:.0f} s"
                )
                connections.close_all()
                time.sleep(pause)
                pause = min(pause * 2, 30.0)

    def _run_loop(self, options: dict[str, object]) -> None:
        call_command(
            "db_worker",
            queue_name=options["queue"],
            interval=options["interval"],
            batch=options["batch"],
            reload=False,
            startup_delay=False,
            verbosity=options["verbosity"],
            stdout=self.stdout,
            stderr=self.stderr,
        )
