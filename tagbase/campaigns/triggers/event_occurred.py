"""*Event occurred*: an event with this name was recorded; with ``payload``, only events whose
payload has every one of those keys with exactly that value."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tagbase.campaigns.nodes import Param
from tagbase.campaigns.triggers import Trigger


class EventOccurred(Trigger):
    kind = "event_occurred"
    label = "Event occurred"
    listens = "events"
    params = (
        Param("name", "text", label="Event name"),
        Param("payload", "object", required=False, label="Payload must contain"),
    )

    @classmethod
    def match(cls, params: dict[str, Any], facts: Sequence[Any]) -> list[int]:
        want = params.get("payload") or {}
        return sorted(
            {
                f.customer_id
                for f in facts
                if f.name == params["name"]
                and all((f.payload or {}).get(k, object()) == v for k, v in want.items())
            }
        )
