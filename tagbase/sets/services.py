"""Every use case of set operations: previews (the overlap of operands, the exact result and
what it would change), combining into an audience as a job, and reading membership as of a
past moment.

*Combine* creates a ``SetJob`` and enqueues it on commit; a worker applies it through the one
membership write path as ONE undoable operation of kind ``set`` (``pipeline``). A new target
audience is created at once, as *Include in a target audience* does.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from tagbase.accounts import audit
from tagbase.accounts.actors import Actor
from tagbase.audiences.models import Audience
from tagbase.audiences.services import create_audience
from tagbase.segments.models import Segment
from tagbase.segments.rules import RuleError, validate
from tagbase.sets import queries
from tagbase.sets.expressions import (
    MAX_OPERANDS,
    Expression,
    Operand,
    SetError,
    Source,
    describe,
    operands,
    parse,
    union_of,
)
from tagbase.sets.models import JobStatus, Mode, SetJob
from tagbase.sets.tasks import run_set_task

__all__ = ["SetError"]


class SetNotFound(SetError):
    code = "not_found"


class IdempotencyConflict(SetError):
    code = "idempotency_key_reused"


# --- Operands ---------------------------------------------------------------------------------


def resolve(expression: Expression) -> list[Source]:
    """Each operand's name and (segments) valid rule, by position; refuses, naming the place,
    an audience or segment that does not exist and a segment whose rule is not valid."""
    items = operands(expression)
    audience_ids = {o.id for o in items if o.kind == "audience"}
    segment_ids = {o.id for o in items if o.kind == "segment"}
    audiences = dict(Audience.objects.filter(pk__in=audience_ids).values_list("pk", "name"))
    segments = {s.pk: s for s in Segment.objects.filter(pk__in=segment_ids)}
    return [_source(o, audiences, segments) for o in items]


def _source(o: Operand, audiences: dict[int, str], segments: dict[int, Segment]) -> Source:
    where = f"{o.path}.{o.kind}"
    if o.kind == "audience":
        if o.id not in audiences:
            raise SetNotFound(
                f"{where}: audience {o.id} does not exist.", field=where, code="audience_not_found"
            )
        return Source("audience", o.id, audiences[o.id])
    segment = segments.get(o.id)
    if segment is None:
        raise SetNotFound(
            f"{where}: segment {o.id} does not exist.", field=where, code="segment_not_found"
        )
    try:
        validate(segment.rules)
    except RuleError as exc:
        raise SetError(
            f"{where}: the rule of segment “{segment.name}” is not valid: {exc.message}",
            field=where,
            code="segment_rule_invalid",
        ) from None
    return Source("segment", segment.pk, segment.name, segment.rules)


# --- Previews ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """What *Combine* would do now: the expression in words, the overlap of its operands, the
    exact result count and, with a target audience, how many would be added and removed."""

    expression: Expression
    sources: list[Source]
    summary: str
    counts: queries.Counts
    mode: str
    audience: Audience | None
    at: datetime

    @property
    def would_remove(self) -> int | None:
        if self.audience is None:
            return None
        return self.counts.outside if self.mode == Mode.REPLACE else 0

    @property
    def audience_count_after(self) -> int | None:
        """Members the target would have: the result, plus (add) its members outside it."""
        if self.audience is None:
            return None
        kept_outside = 0 if self.mode == Mode.REPLACE else self.counts.outside or 0
        return self.counts.result + kept_outside


def preview(tree: Any, *, mode: str = Mode.ADD, audience_id: int | None = None) -> Preview:
    """Evaluate an expression now, changing nothing (one aggregate query)."""
    return _preview(parse(tree), mode=mode, audience_id=audience_id)


def overlap(items: Any) -> Preview:
    """The overlap view of 2 to MAX_OPERANDS operands (a list of ``{"audience": id}`` /
    ``{"segment": id}``): every region of their Venn diagram; the result is their union."""
    if not isinstance(items, list) or not 2 <= len(items) <= MAX_OPERANDS:
        raise SetError(
            f"operands: give 2 to {MAX_OPERANDS} operands.",
            field="operands",
            code="expression_invalid",
        )
    parsed = [parse(item, f"operands.{i}") for i, item in enumerate(items)]
    if not all(isinstance(p, Operand) for p in parsed):
        raise SetError(
            'operands: each item is one operand, {"audience": id} or {"segment": id}.',
            field="operands",
            code="expression_invalid",
        )
    return _preview(union_of(parsed), mode=Mode.ADD, audience_id=None)  # type: ignore[arg-type]


def _preview(expression: Expression, *, mode: str, audience_id: int | None) -> Preview:
    if mode not in Mode.values:
        raise SetError(f"mode must be one of {', '.join(Mode.values)}.", field="mode")
    sources = resolve(expression)
    audience = _target(audience_id) if audience_id is not None else None
    now = timezone.now()
    counts = queries.evaluate(
        expression, sources, target=audience.pk if audience else None, now=now
    )
    return Preview(
        expression=expression,
        sources=sources,
        summary=describe(expression, sources),
        counts=counts,
        mode=mode,
        audience=audience,
        at=now,
    )


def _target(audience_id: int) -> Audience:
    audience = Audience.objects.filter(pk=audience_id).first()
    if audience is None:
        raise SetNotFound(
            f"Audience {audience_id} does not exist.", field="audience", code="audience_not_found"
        )
    return audience


# --- Combine ----------------------------------------------------------------------------------


def combine(
    tree: Any,
    *,
    actor: Actor,
    mode: str = Mode.ADD,
    audience_id: int | None = None,
    new_audience_name: str | None = None,
    idempotency_key: str = "",
    enqueue: bool = True,
) -> SetJob:
    """Create the job that puts the expression's result into an audience: a new one (created at
    once), or an existing one by adding the result (``add``) or making it equal to the result
    (``replace``: add the missing, remove the rest). With an ``idempotency_key`` (per actor) the
    same request returns the first job; a different request with the key is refused."""
    expression = parse(tree)
    if mode not in Mode.values:
        raise SetError(f"mode must be one of {', '.join(Mode.values)}.", field="mode")
    new_name = (new_audience_name or "").strip()
    if (audience_id is None) == (not new_name):
        raise SetError(
            "Choose a target audience or type a new audience name (one of the two).",
            field="audience",
        )
    if new_name and mode != Mode.ADD:
        raise SetError("A new audience is filled with the result (mode add).", field="mode")
    request = {"expression": expression.to_json(), "mode": mode, "audience": audience_id}
    request["new"] = new_name
    fingerprint = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()
    key = idempotency_key[:200]
    if key:
        first = SetJob.objects.filter(actor_label=actor.label[:150], idempotency_key=key).first()
        if first is not None:
            if first.request_fingerprint != fingerprint:
                raise IdempotencyConflict(
                    "This Idempotency-Key was used for a different request.",
                    field="Idempotency-Key",
                )
            return first
    sources = resolve(expression)
    with transaction.atomic():
        audience = create_audience(new_name, actor=actor) if new_name else _target(audience_id)  # type: ignore[arg-type]
        counts = queries.evaluate(expression, sources, target=audience.pk)
        try:
            with transaction.atomic():
                job = SetJob.objects.create(
                    expression=expression.to_json(),
                    sources=[s.to_json() for s in sources],
                    summary=describe(expression, sources)[:1000],
                    mode=mode,
                    audience=audience,
                    audience_name=audience.name,
                    created_audience=bool(new_name),
                    result_count=counts.result,
                    expected_added=counts.added,
                    expected_removed=counts.outside if mode == Mode.REPLACE else 0,
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
            "job": job.pk,
            "mode": mode,
            "name": audience.name,
            "expression": job.summary,
            "created_audience": job.created_audience,
            "result": job.result_count,
        }
        audit.record(actor, "set.combined", "audience", audience.pk, summary)
        if enqueue:
            transaction.on_commit(lambda: run_set_task.enqueue(job.pk))
    return job


def get_job(job_id: int) -> SetJob:
    job = SetJob.objects.select_related("operation").filter(pk=job_id).first()
    if job is None:
        raise SetNotFound(f"Job {job_id} does not exist.", code="job_not_found")
    return job


def is_running(job: SetJob) -> bool:
    return job.status in (JobStatus.QUEUED, JobStatus.RUNNING)


# --- Membership as of a moment ----------------------------------------------------------------


def end_of_day(day: date) -> datetime:
    """The last instant (to the microsecond) of a calendar day in TIME_ZONE: "on 1 March" is
    the audience as it stood when 1 March ended."""
    midnight = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
    return midnight - timedelta(microseconds=1)


def day_moment(day: date, *, field: str = "at", now: datetime | None = None) -> datetime:
    """The moment "on ``day``" means: the end of that day, or now while the day has not ended.
    A day that has not begun is refused."""
    now = now or timezone.now()
    start = timezone.make_aware(datetime.combine(day, time.min))
    check_moment(start, field=field, now=now)
    return min(end_of_day(day), now)


def parse_moment(text: str, *, field: str = "at", now: datetime | None = None) -> datetime:
    """``YYYY-MM-DD`` (the end of that day in TIME_ZONE, or now during that day) or an ISO 8601
    date and time (without an offset: in TIME_ZONE). Refuses the future: the history is not
    written yet."""
    text = (text or "").strip()
    try:
        if len(text) == 10:
            return day_moment(date.fromisoformat(text), field=field, now=now)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if timezone.is_naive(moment):
            moment = timezone.make_aware(moment)
    except (ValueError, OverflowError):
        raise SetError(
            f"{field}: {text!r} is not a date (YYYY-MM-DD) or a date and time "
            "(YYYY-MM-DDTHH:MM[:SS][+03:00]).",
            field=field,
            code="invalid_moment",
        ) from None
    return check_moment(moment, field=field, now=now)


def check_moment(moment: datetime, *, field: str = "at", now: datetime | None = None) -> datetime:
    now = now or timezone.now()
    if moment > now:
        raise SetError(
            f"{field}: {timezone.localtime(moment):%Y-%m-%d %H:%M} is in the future; membership "
            "can be read as of now or earlier.",
            field=field,
            code="moment_in_future",
        )
    return moment


@dataclass(frozen=True)
class AsOf:
    audience: Audience
    at: datetime
    count: int


def as_of(audience_id: int, at: datetime) -> AsOf:
    """How many customers were members of the audience at ``at`` (docs/sets.md)."""
    audience = _target(audience_id)
    check_moment(at)
    return AsOf(audience=audience, at=at, count=queries.count_as_of(audience.pk, at))


def preview_summary(shown: Preview) -> dict[str, Any]:
    """A preview as the API and the CLI show it (the keys of ``schemas.PreviewOut``)."""
    counts = shown.counts
    target = None
    if shown.audience is not None:
        would_remove = shown.would_remove or 0
        target = {
            "audience": shown.audience.pk,
            "name": shown.audience.name,
            "mode": shown.mode,
            "would_add": counts.added,
            "already_member": counts.kept,
            "would_remove": would_remove,
            "count_after": shown.audience_count_after,
        }
    return {
        "expression": shown.expression.to_json(),
        "summary": shown.summary,
        "operands": [
            {"position": p, "kind": s.kind, "id": s.id, "name": s.name}
            for p, s in enumerate(shown.sources)
        ],
        "regions": [
            {"operands": list(r.positions), "label": r.label, "count": r.count}
            for r in counts.regions
        ],
        "union": counts.union,
        "result": counts.result,
        "target": target,
        "as_of": shown.at,
    }
