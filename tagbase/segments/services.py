"""Every write use case of segments, and the previews the builder and the API show.

Saving validates the rule (``rules.validate``), checks that the audiences and segments it names
exist and that segments do not refer to themselves through others (``segment_cycle``), and keeps
the metrics fresh. *Include in a target audience* creates a ``SegmentJob`` and enqueues it on
commit; the worker applies it through the one membership write path (``pipeline``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from tagbase.accounts import audit
from tagbase.accounts.actors import Actor
from tagbase.audiences.models import Audience, Membership
from tagbase.audiences.services import create_audience
from tagbase.customers.models import Customer
from tagbase.lib.errors import ServiceError
from tagbase.lib.names import InvalidName, audience_name_key, clean_audience_name
from tagbase.segments.compiler import Metrics, describe, members, metrics, reference_names
from tagbase.segments.models import JobAction, JobStatus, Segment, SegmentJob
from tagbase.segments.queries import member_page, store_metrics
from tagbase.segments.rules import RuleError, referenced, to_json, validate
from tagbase.segments.tasks import refresh_metrics_task, run_segment_task

__all__ = ["RuleError", "SegmentError"]


class SegmentError(ServiceError):
    code = "segment_error"


class SegmentNotFound(SegmentError):
    code = "segment_not_found"


class SegmentNameTaken(SegmentError):
    code = "segment_name_taken"


class SegmentInUse(SegmentError):
    code = "segment_in_use"


class IdempotencyConflict(SegmentError):
    code = "idempotency_key_reused"


# --- Rules ----------------------------------------------------------------------------------


def clean_rules(tree: Any, *, segment_id: int | None = None) -> dict[str, Any]:
    """Validate a rule and its references; raises RuleError naming the place."""
    cleaned = validate(tree)
    audiences = referenced(cleaned, "audience")
    if audiences:
        known = set(Audience.objects.filter(pk__in=audiences).values_list("pk", flat=True))
        missing = sorted(audiences - known)
        if missing:
            raise RuleError(
                f"audience {missing[0]} does not exist", _where(cleaned, "audience", missing[0])
            )
    segments = referenced(cleaned, "segment")
    if segments:
        known = set(Segment.objects.filter(pk__in=segments).values_list("pk", flat=True))
        missing = sorted(segments - known)
        if missing:
            raise RuleError(
                f"segment {missing[0]} does not exist", _where(cleaned, "segment", missing[0])
            )
        if segment_id is not None:
            chain = _cycle(segment_id, segments)
            if chain:
                names = dict(Segment.objects.filter(pk__in=chain).values_list("pk", "name"))
                shown = " → ".join(f"“{names.get(i, i)}”" for i in chain)
                raise RuleError(
                    f"a segment cannot include itself: {shown}",
                    _where(cleaned, "segment", chain[1]),
                    code="segment_cycle",
                )
    return cleaned


def _where(tree: dict[str, Any], kind: str, target: int, path: str = "") -> str | None:
    for index, node in enumerate(tree["rules"]):
        here = f"{path}rules[{index}]"
        if "field" in node:
            value = node.get("value")
            values = value if isinstance(value, list) else [value]
            fields = ("audience", "audiences") if kind == "audience" else ("segment",)
            if node["field"] in fields and target in values:
                return f"{here}.value"
        else:
            found = _where(node, kind, target, here + ".")
            if found:
                return found
    return None


def _cycle(start: int, direct: set[int]) -> list[int] | None:
    """The chain start → … → start through saved segments' references, if there is one."""
    uses = dict(Segment.objects.values_list("pk", "uses"))
    stack: list[tuple[int, list[int]]] = [(d, [start, d]) for d in sorted(direct)]
    seen: set[int] = set()
    while stack:
        node, chain = stack.pop()
        if node == start:
            return chain
        if node in seen:
            continue
        seen.add(node)
        for nxt in uses.get(node) or []:
            stack.append((nxt, [*chain, nxt]))
    return None


@dataclass(frozen=True)
class Preview:
    rules: dict[str, Any]
    summary: str
    metrics: Metrics
    sample: list[Customer]
    at: datetime


def preview(tree: Any, *, sample: int = 20, segment_id: int | None = None) -> Preview:
    """What *Select* shows: the summary, the five metrics and the first members."""
    cleaned = clean_rules(tree, segment_id=segment_id)
    now = timezone.now()
    return Preview(
        rules=cleaned,
        summary=describe(cleaned),
        metrics=metrics(cleaned, now=now),
        sample=member_page(cleaned, size=sample) if sample else [],
        at=now,
    )


def count(tree: Any) -> int:
    """The live count as the builder is edited."""
    return members(clean_rules(tree)).count()


def summary(segment: Segment) -> str:
    tree = validate(segment.rules)
    return describe(tree, reference_names(tree))


# --- Segments -------------------------------------------------------------------------------


def _clean_name(name: str) -> str:
    try:
        return clean_audience_name(name)
    except InvalidName as exc:
        raise SegmentError(exc.message, field="name", code="segment_name_invalid") from None


def _check_name_free(name: str, exclude: int | None = None) -> None:
    taken = Segment.objects.filter(name_key=audience_name_key(name))
    if exclude is not None:
        taken = taken.exclude(pk=exclude)
    if taken.exists():
        raise SegmentNameTaken(f"A segment named {name!r} already exists.", field="name")


def create_segment(
    name: str, rules: Any, *, actor: Actor, description: str = "", refresh: bool = True
) -> Segment:
    display = _clean_name(name)
    cleaned = clean_rules(rules)
    _check_name_free(display)
    try:
        with transaction.atomic():
            segment = Segment.objects.create(
                name=display,
                description=description.strip(),
                rules=to_json(cleaned),
                uses=sorted(referenced(cleaned, "segment")),
                created_by=actor.user,
                updated_by=actor.user,
            )
            audit.record(actor, "segment.created", "segment", segment.pk, {"name": segment.name})
    except IntegrityError:
        raise SegmentNameTaken(
            f"A segment named {display!r} already exists.", field="name"
        ) from None
    if refresh:
        store_metrics(segment.pk)
        segment.refresh_from_db()
    return segment


def update_segment(
    segment: Segment,
    *,
    actor: Actor,
    name: str | None = None,
    rules: Any = None,
    description: str | None = None,
) -> Segment:
    fields: dict[str, Any] = {"updated_by": actor.user, "updated_at": timezone.now()}
    if name is not None:
        display = _clean_name(name)
        _check_name_free(display, exclude=segment.pk)
        fields["name"] = display
        fields["name_key"] = audience_name_key(display)
    if rules is not None:
        cleaned = clean_rules(rules, segment_id=segment.pk)
        fields["rules"] = to_json(cleaned)
        fields["uses"] = sorted(referenced(cleaned, "segment"))
    if description is not None:
        fields["description"] = description.strip()
    # The rules themselves stay out of the log: their values may be a customer's phone or e-mail.
    summary = {
        "name": fields.get("name", segment.name),
        "renamed": "name" in fields and fields["name"] != segment.name,
        "rules_changed": "rules" in fields and fields["rules"] != segment.rules,
        "description_changed": fields.get("description", segment.description)
        != segment.description,
    }
    try:
        with transaction.atomic():
            if not Segment.objects.filter(pk=segment.pk).update(**fields):
                raise SegmentNotFound(f"Segment {segment.pk} does not exist.")
            audit.record(actor, "segment.updated", "segment", segment.pk, summary)
    except IntegrityError:
        raise SegmentNameTaken("A segment with this name already exists.", field="name") from None
    if rules is not None:
        store_metrics(segment.pk)
    segment.refresh_from_db()
    return segment


def duplicate_segment(segment: Segment, *, actor: Actor, name: str | None = None) -> Segment:
    """A copy with "(copy)", "(copy 2)"… appended, or the given name."""
    if name is None:
        base = f"{segment.name} (copy)"
        name, n = base, 2
        while Segment.objects.filter(name_key=audience_name_key(name)).exists():
            name = f"{segment.name} (copy {n})"
            n += 1
    return create_segment(name, segment.rules, actor=actor, description=segment.description)


def users_of(segment: Segment) -> list[Segment]:
    return [s for s in Segment.objects.exclude(pk=segment.pk) if segment.pk in (s.uses or [])]


def delete_segment(segment: Segment, *, actor: Actor) -> None:
    """Refused while other segments use it (the error names them)."""
    using = users_of(segment)
    if using:
        names = ", ".join(f"“{s.name}”" for s in using)
        raise SegmentInUse(
            f"“{segment.name}” is used by {names}; change those first.", code="segment_in_use"
        )
    with transaction.atomic():
        if Segment.objects.filter(pk=segment.pk).delete()[0]:
            audit.record(actor, "segment.deleted", "segment", segment.pk, {"name": segment.name})


def refresh_metrics(segment: Segment) -> Segment:
    fresh = store_metrics(segment.pk)
    if fresh is None:
        raise SegmentNotFound(f"Segment {segment.pk} does not exist.")
    return fresh


def refresh_stale_metrics(*, now: datetime | None = None, limit: int = 50) -> list[int]:
    """Enqueue a refresh for saved segments whose metrics are older than
    TAGBASE_SEGMENT_METRICS_SECONDS (or missing). Returns their ids."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.TAGBASE_SEGMENT_METRICS_SECONDS)
    stale = Segment.objects.filter(Q(metrics_at__isnull=True) | Q(metrics_at__lt=cutoff))
    ids = list(stale.order_by("metrics_at").values_list("pk", flat=True)[:limit])
    for segment_id in ids:
        refresh_metrics_task.enqueue(segment_id)
    return ids


# --- Include in a target audience -----------------------------------------------------------


def count_change(segment: Segment, action: str, audience_id: int | None) -> int:
    """How many customers the job would add or remove if it ran now."""
    tree = validate(segment.rules)
    qs = members(tree)
    if audience_id is None:
        return qs.count() if action == JobAction.ADD else 0
    in_audience = Membership.objects.filter(audience_id=audience_id).values("customer_id")
    if action == JobAction.ADD:
        return qs.exclude(sc_id__in=in_audience).count()
    return qs.filter(sc_id__in=in_audience).count()


def include_in_audience(
    segment: Segment,
    *,
    action: str,
    actor: Actor,
    audience_id: int | None = None,
    new_audience_name: str | None = None,
    idempotency_key: str = "",
    enqueue: bool = True,
) -> SegmentJob:
    """Create the job that adds the segment's members to (or removes them from) an audience.
    A new audience name is created at once (add only). With an ``idempotency_key`` (per actor)
    the same request returns the first job; a different request with the key is refused."""
    if action not in (JobAction.ADD, JobAction.REMOVE):
        raise SegmentError("action must be 'add' or 'remove'.", field="action")
    if (audience_id is None) == (not new_audience_name):
        raise SegmentError(
            "Choose an audience or type a new audience name (one of the two).", field="audience"
        )
    if new_audience_name and action == JobAction.REMOVE:
        raise SegmentError(
            "Customers can only be removed from an existing audience.", field="new_audience_name"
        )
    request = {
        "segment": segment.pk,
        "action": action,
        "audience": audience_id,
        "new": (new_audience_name or "").strip(),
    }
    fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    key = idempotency_key[:200]
    if key:
        first = SegmentJob.objects.filter(
            actor_label=actor.label[:150], idempotency_key=key
        ).first()
        if first is not None:
            if first.request_fingerprint != fingerprint:
                raise IdempotencyConflict(
                    "This Idempotency-Key was used for a different request.",
                    field="Idempotency-Key",
                )
            return first
    with transaction.atomic():
        if new_audience_name:
            audience = create_audience(new_audience_name, actor=actor)
        else:
            found = Audience.objects.filter(pk=audience_id or 0).first()
            if found is None:
                raise SegmentError(
                    f"Audience {audience_id} does not exist.",
                    field="audience",
                    code="audience_not_found",
                )
            audience = found
        expected = count_change(segment, action, audience.pk)
        try:
            with transaction.atomic():
                job = SegmentJob.objects.create(
                    segment=segment,
                    segment_name=segment.name,
                    rules=segment.rules,
                    action=action,
                    audience=audience,
                    audience_name=audience.name,
                    expected=expected,
                    created_by=actor.user,
                    actor_label=actor.label[:150],
                    idempotency_key=key,
                    request_fingerprint=fingerprint if key else "",
                )
        except IntegrityError:
            raise IdempotencyConflict(
                "A request with this Idempotency-Key is in progress.", code="idempotency_key_in_use"
            ) from None
        summary = {
            "name": segment.name,
            "job": job.pk,
            "action": action,
            "audience_id": audience.pk,
            "audience": audience.name,
            "expected": expected,
        }
        audit.record(actor, "segment.included", "segment", segment.pk, summary)
        if enqueue:
            transaction.on_commit(lambda: run_segment_task.enqueue(job.pk))
    return job


def get_job(job_id: int) -> SegmentJob:
    job = SegmentJob.objects.select_related("operation").filter(pk=job_id).first()
    if job is None:
        raise SegmentError(f"Job {job_id} does not exist.", code="job_not_found")
    return job


def is_running(job: SegmentJob) -> bool:
    return job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
