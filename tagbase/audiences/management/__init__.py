"""What the audience commands share: finding an audience by name, rendering tables and JSON."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone

from tagbase.audiences import queries
from tagbase.audiences.models import Audience, Operation


def audience_named(name: str) -> Audience:
    """The audience whose name has the same key as ``name``; a one-line error otherwise."""
    audience = queries.audience_by_name(name)
    if audience is None:
        raise CommandError(f"No audience named {name!r} (see `tagbase audience list`).")
    return audience


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def operation_dict(op: Operation) -> dict[str, Any]:
    """An operation as the JSON the CLI prints (the same keys the API uses for operations)."""
    return {
        "id": op.pk,
        "audience_id": op.audience_id,
        "audience_name": op.audience_name,
        "kind": op.kind,
        "action": op.action,
        "status": op.status,
        "actor": op.actor_label,
        "source_ref": op.source_ref,
        "requested": op.requested,
        "added": op.added,
        "already_member": op.already_member,
        "removed": op.removed,
        "not_member": op.not_member,
        "not_found": op.not_found,
        "ambiguous": op.ambiguous,
        "invalid": op.invalid,
        "created_at": iso(op.created_at),
        "finished_at": iso(op.finished_at),
        "undoes": op.undoes_id,
    }


def operation_summary(op: Operation) -> str:
    """One line: what the operation did, in words."""
    if op.action == "add":
        counts = f"added {op.added:,}, already members {op.already_member:,}"
    elif op.action == "replace":
        counts = (
            f"added {op.added:,}, removed {op.removed:,}, already members {op.already_member:,}"
        )
    else:
        counts = f"removed {op.removed:,}, not members {op.not_member:,}"
    rejected = f"not found {op.not_found:,}"
    if op.ambiguous:
        rejected += f", ambiguous {op.ambiguous:,}"
    if op.invalid:
        rejected += f", invalid {op.invalid:,}"
    return f"Operation #{op.pk} on {op.audience_name!r}: {counts}, {rejected}."


def to_json(data: object) -> str:
    return json.dumps(data, ensure_ascii=False, indent=2)


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned text columns, numbers right-aligned; an empty table says so."""
    if not rows:
        return "(none)"
    cells = [[cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(isinstance(row[i], int) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [
            v.rjust(w) if num else v.ljust(w)
            for v, w, num in zip(values, widths, numeric, strict=True)
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return timezone.localtime(value).strftime("%Y-%m-%d %H:%M")
    return str(value)
