"""Scoped reads for segments: saved metrics, member pages, identifiers for export."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.utils import timezone

from tagbase.customers.models import Card, Customer
from tagbase.lib.identifiers import IdType
from tagbase.segments.compiler import members, metrics
from tagbase.segments.models import Segment, SegmentJob
from tagbase.segments.rules import validate


def store_metrics(segment_id: int) -> Segment | None:
    """Compute and keep a saved segment's five metrics with their time."""
    segment = Segment.objects.filter(pk=segment_id).first()
    if segment is None:
        return None
    now = timezone.now()
    m = metrics(validate(segment.rules), now=now)
    Segment.objects.filter(pk=segment_id).update(
        customers=m.customers,
        percent_customers=m.percent_customers,
        percent_revenue=m.percent_revenue,
        average_receipt=m.average_receipt,
        total_value=m.total_value,
        metrics_at=now,
    )
    segment.refresh_from_db()
    return segment


def member_page(tree: dict[str, Any], *, after: int = 0, size: int = 50) -> list[Customer]:
    """Members in sc_id order after ``after`` (keyset paging)."""
    return list(members(tree).filter(sc_id__gt=after).order_by("sc_id")[:size])


def iter_identifiers(tree: dict[str, Any], id_type: str, *, chunk: int = 5000) -> Iterator[str]:
    """The members' identifiers of one type, in sc_id order, in constant memory; members without
    that identifier are left out (a customer with several cards gives each card)."""
    last = 0
    base = members(tree).order_by("sc_id")
    while True:
        ids = list(base.filter(sc_id__gt=last).values_list("sc_id", flat=True)[:chunk])
        if not ids:
            return
        last = ids[-1]
        if id_type == IdType.SC_ID:
            yield from (str(i) for i in ids)
        elif id_type == IdType.CARD:
            yield from (
                Card.objects.filter(customer_id__in=ids)
                .order_by("customer_id", "number")
                .values_list("number", flat=True)
            )
        else:
            column = {"external_id": "external_id", "phone": "phone", "email": "email"}[id_type]
            rows = Customer.objects.filter(sc_id__in=ids).exclude(**{f"{column}__isnull": True})
            yield from rows.order_by("sc_id").values_list(column, flat=True)


def job_summary(job: SegmentJob) -> dict[str, Any]:
    """A job as the API and the CLI show it."""
    op = job.operation
    return {
        "id": job.pk,
        "segment": job.segment_id,
        "segment_name": job.segment_name,
        "action": job.action,
        "audience": job.audience_id,
        "audience_name": job.audience_name,
        "status": job.status,
        "expected": job.expected,
        "operation": op.pk if op else None,
        "added": op.added if op else None,
        "removed": op.removed if op else None,
        "error": job.error or None,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }
