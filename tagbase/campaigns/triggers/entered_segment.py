"""*Customer entered a segment*: on every tick, the saved segment's members who were not members
at the previous check enter. The first check after activation only notes who is in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tagbase.campaigns.models import SegmentWatch
from tagbase.campaigns.nodes import Param
from tagbase.campaigns.triggers import Trigger
from tagbase.lib.sqlbits import chunked
from tagbase.segments.compiler import members
from tagbase.segments.models import Segment
from tagbase.segments.rules import validate


class EnteredSegment(Trigger):
    kind = "entered_segment"
    label = "Customer entered a segment"
    params = (Param("segment", "segment", label="Segment"),)

    @classmethod
    def due(
        cls, campaign: Any, params: dict[str, Any], *, since: datetime, now: datetime
    ) -> list[int] | None:
        rules = Segment.objects.filter(pk=params["segment"]).values_list("rules", flat=True).first()
        if rules is None:
            return None
        current = set(members(validate(rules), now=now).values_list("sc_id", flat=True))
        watched = SegmentWatch.objects.filter(campaign=campaign)
        first_check = not watched.exists()
        before = set(watched.values_list("customer_id", flat=True))
        gone, new = sorted(before - current), sorted(current - before)
        for part in chunked(gone, 5_000):
            watched.filter(customer_id__in=part).delete()
        SegmentWatch.objects.bulk_create(
            [SegmentWatch(campaign=campaign, customer_id=c) for c in new], batch_size=5_000
        )
        if first_check or not new:
            return None
        return new
