"""*Customer entered a segment*: on every tick, the saved segment's members who were not members
at the previous check enter. The first check after activation only notes who is in.

Set-based: the members are the segment's SQL (``segments.compiler.member_ids_sql``), compared
with the campaign's ``SegmentWatch`` rows in the database — those who left are deleted, those
who are new inserted — and the customers let in are the watch rows this check inserted (their
ids are above the table's highest id before it: the campaign's row lock, held by the firing,
keeps any other check of this campaign out meanwhile). No member list is loaded into Python.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection

from tagbase.audiences.services import CustomerSelection
from tagbase.campaigns.nodes import Param
from tagbase.campaigns.triggers import Trigger
from tagbase.segments.compiler import member_ids_sql
from tagbase.segments.models import Segment
from tagbase.segments.rules import validate

W = "campaigns_segmentwatch"


class EnteredSegment(Trigger):
    kind = "entered_segment"
    label = "Customer entered a segment"
    params = (Param("segment", "segment", label="Segment"),)

    @classmethod
    def due(
        cls, campaign: Any, params: dict[str, Any], *, since: datetime, now: datetime
    ) -> CustomerSelection | None:
        rules = Segment.objects.filter(pk=params["segment"]).values_list("rules", flat=True).first()
        if rules is None:
            return None
        members, member_params = member_ids_sql(validate(rules), now=now)
        with connection.cursor() as cur:
            cur.execute(f"SELECT 1 FROM {W} WHERE campaign_id = %s LIMIT 1", [campaign.pk])
            first_check = cur.fetchone() is None
            cur.execute(
                f"DELETE FROM {W} WHERE campaign_id = %s AND customer_id NOT IN "
                f"(SELECT m.customer_id FROM ({members}) m)",
                [campaign.pk, *member_params],
            )
            cur.execute(f"SELECT COALESCE(MAX(id), 0) FROM {W}")
            mark = int(cur.fetchone()[0])
            cur.execute(
                f"INSERT INTO {W} (campaign_id, customer_id) "
                f"SELECT %s, m.customer_id FROM ({members}) m WHERE NOT EXISTS "
                f"(SELECT 1 FROM {W} w WHERE w.campaign_id = %s AND w.customer_id = m.customer_id) "
                "ORDER BY m.customer_id",
                [campaign.pk, *member_params, campaign.pk],
            )
            new = cur.rowcount
        if first_check or not new:
            return None
        return CustomerSelection(
            f"SELECT customer_id FROM {W} WHERE campaign_id = %s AND id > %s",
            (campaign.pk, mark),
            distinct=True,
            customers_only=True,
        )
