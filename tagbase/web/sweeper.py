"""A thread in every ``tagbase worker`` that hands abandoned jobs back to the queue.

A worker killed mid-job leaves its task marked running in the task table and its job's lease
ticking; when the lease expires, any worker's sweeper re-enqueues the job and whichever worker
claims it continues from the job's checkpoint. Sweeping from every worker is safe: claiming is
a conditional UPDATE that exactly one worker wins.
"""

from __future__ import annotations

import logging
import threading
import time

from django.conf import settings
from django.db import DatabaseError, connections

log = logging.getLogger(__name__)


def sweep_once() -> list[int]:
    from tagbase.imports.tasks import sweep_stale_jobs
    from tagbase.segments.tasks import sweep_stale_jobs as sweep_segment_jobs
    from tagbase.sets.tasks import sweep_stale_jobs as sweep_set_jobs

    try:
        return sweep_stale_jobs() + sweep_segment_jobs() + sweep_set_jobs()
    finally:
        connections.close_all()


def refresh_segment_metrics_once() -> list[int]:
    from tagbase.segments.services import refresh_stale_metrics

    try:
        return refresh_stale_metrics()
    finally:
        connections.close_all()


def campaign_tick_once() -> None:
    from tagbase.campaigns.tasks import tick

    try:
        tick()
    except Exception:  # a campaign bug must not stop the sweeper from re-enqueuing jobs
        log.exception("sweeper: campaign tick failed")
    finally:
        connections.close_all()


def export_tick_once() -> list[int]:
    from tagbase.audiences.tasks import enqueue_due_exports

    try:
        return enqueue_due_exports()
    except Exception:  # an export bug must not stop the sweeper from re-enqueuing jobs
        log.exception("sweeper: scheduled exports failed")
        return []
    finally:
        connections.close_all()


def expire_memberships_once() -> int:
    """Remove the memberships whose expiry has passed: one ``expiry`` operation per audience
    (``audiences.services.expire_due_memberships``; safe from several workers at once)."""
    from tagbase.audiences.services import expire_due_memberships

    try:
        return len(expire_due_memberships())
    except Exception:  # an expiry bug must not stop the sweeper from re-enqueuing jobs
        log.exception("sweeper: membership expiry failed")
        return 0
    finally:
        connections.close_all()


def purge_once() -> int:
    from tagbase.imports.services import purge_expired_files

    try:
        return purge_expired_files()
    finally:
        connections.close_all()


def start_sweeper(stop: threading.Event) -> threading.Thread:
    """Every TAGBASE_SWEEP_SECONDS: re-enqueue abandoned jobs (imports, segment and set jobs) and
    run the campaign tick (scheduled triggers, due waits, the outbox), queue the scheduled
    audience exports that are due and remove the memberships whose expiry has passed;
    every 5 minutes: enqueue a metrics refresh for saved segments whose metrics are older than
    TAGBASE_SEGMENT_METRICS_SECONDS; about hourly: delete stored import files past
    TAGBASE_IMPORT_RETENTION_DAYS."""

    def loop() -> None:
        next_purge = next_metrics = 0.0
        while not stop.wait(settings.TAGBASE_SWEEP_SECONDS):
            try:
                found = sweep_once()
                campaign_tick_once()
                export_tick_once()
                expire_memberships_once()
                if time.monotonic() >= next_metrics:
                    refresh_segment_metrics_once()
                    next_metrics = time.monotonic() + 300
                if time.monotonic() >= next_purge:
                    purge_once()
                    next_purge = time.monotonic() + 3600
            except DatabaseError:
                log.warning("sweeper: database unavailable; will try again")
                continue
            if found:
                log.info("sweeper: re-enqueued abandoned jobs %s", found)

    thread = threading.Thread(target=loop, name="tagbase-sweeper", daemon=True)
    thread.start()
    return thread
