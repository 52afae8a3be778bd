"""Reads for set operations: the overlap of operands and what an expression would change, in one
aggregate query; a job as the API and the CLI show it; membership as of a past moment."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from tagbase.audiences import queries as audience_queries
from tagbase.sets.expressions import Expression, Source, holds, regions_sql
from tagbase.sets.models import SetJob


@dataclass(frozen=True)
class Region:
    """One region of the Venn diagram: the customers in exactly these operands (positions)."""

    mask: int
    positions: tuple[int, ...]
    count: int
    label: str


@dataclass(frozen=True)
class Counts:
    """What evaluating an expression now gives, without changing anything."""

    regions: list[Region]  # every region, empty ones included, by mask
    union: int  # customers in at least one operand
    result: int  # customers in the result
    added: int | None  # with a target: result customers not in it
    kept: int | None  # with a target: result customers already in it
    outside: int | None  # with a target: its members outside the result (replace removes them)


def region_label(sources: list[Source], positions: tuple[int, ...]) -> str:
    names = " ∩ ".join(sources[p].label for p in positions)
    return names if len(positions) == len(sources) else f"{names} only"


def evaluate(
    expression: Expression,
    sources: list[Source],
    *,
    target: int | None = None,
    now: datetime | None = None,
) -> Counts:
    """The overlap regions, the result count and (with a target audience) the change, from ONE
    aggregate over the operands' members (``expressions.regions_sql``)."""
    sql, params = regions_sql(sources, target=target, now=now)
    with connection.cursor() as cur:
        cur.execute(sql, params)
        counted = [(int(mask), int(n)) for mask, n in cur.fetchall()]
    everyone = (1 << len(sources)) - 1
    by_mask = dict.fromkeys(range(1, everyone + 1), 0)
    result = added = kept = outside = 0
    for mask, n in counted:
        own = mask & everyone
        in_target = target is not None and bool(mask >> len(sources) & 1)
        if own:
            by_mask[own] += n
        if holds(expression, own):
            result += n
            kept += n if in_target else 0
            added += 0 if in_target else n
        elif in_target:
            outside += n
    # Single operands first, then pairs, then all three.
    ordered = sorted(by_mask.items(), key=lambda item: (bin(item[0]).count("1"), item[0]))
    regions = [_region(sources, mask, n) for mask, n in ordered]
    with_target = target is not None
    return Counts(
        regions=regions,
        union=sum(by_mask.values()),
        result=result,
        added=added if with_target else None,
        kept=kept if with_target else None,
        outside=outside if with_target else None,
    )


def _region(sources: list[Source], mask: int, count: int) -> Region:
    positions = tuple(p for p in range(len(sources)) if mask >> p & 1)
    return Region(mask, positions, count, region_label(sources, positions))


def job_summary(job: SetJob) -> dict[str, Any]:
    """A job as the API and the CLI show it."""
    op = job.operation
    return {
        "id": job.pk,
        "expression": job.expression,
        "summary": job.summary,
        "mode": job.mode,
        "audience": job.audience_id,
        "audience_name": job.audience_name,
        "created_audience": job.created_audience,
        "status": job.status,
        "result_count": job.result_count,
        "expected_added": job.expected_added,
        "expected_removed": job.expected_removed,
        "operation": op.pk if op else None,
        "added": op.added if op else None,
        "removed": op.removed if op else None,
        "error": job.error or None,
        "created_at": job.created_at,
        "finished_at": job.finished_at,
    }


# --- Membership as of a moment (the reconstruction is audiences.queries.members_as_of_sql) -----


def count_as_of(audience_id: int, at: datetime) -> int:
    return audience_queries.count_members_as_of(audience_id, at)


def page_as_of(audience_id: int, at: datetime, after: int = 0, limit: int = 50) -> list[int]:
    return audience_queries.member_ids_as_of(audience_id, at, after, limit)


def identifiers_as_of(audience_id: int, at: datetime, id_type: str) -> Iterator[str]:
    return audience_queries.iter_identifiers_as_of(audience_id, at, id_type)
