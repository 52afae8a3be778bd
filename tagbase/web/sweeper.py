"""A thread in every ``tagbase worker`` that hands abandoned jobs back to the queue.

A worker killed mid-job leaves its task marked running in the task table and its job's lease
ticking; when the lease expires, any worker's sweeper re-enqueues the job and whichever worker
claims it continues from the job's checkpoint. Sweeping from every worker is safe: claiming is
a conditional UPDATE that exactly one worker wins.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import DatabaseError, connections

log = logging.getLogger(__name__)


def sweep_once() -> list[int]:
    from tagbase.imports.tasks import sweep_stale_jobs

    try:
        return sweep_stale_jobs()
    finally:
        connections.close_all()


def start_sweeper(stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        while not stop.wait(settings.TAGBASE_SWEEP_SECONDS):
            try:
                found = sweep_once()
            except DatabaseError:
                log.warning("sweeper: database unavailable; will try again")
                continue
            if found:
                log.info("sweeper: re-enqueued abandoned jobs %s", found)

    thread = threading.Thread(target=loop, name="tagbase-sweeper", daemon=True)
    thread.start()
    return thread
