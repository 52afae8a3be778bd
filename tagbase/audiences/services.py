"""Every write to audiences and memberships. Nothing else in Tagbase writes these tables.

Each use case owns its transaction, records an ``Operation`` and keeps ``member_count`` and
``last_set_at`` exact in the same transaction as the rows. Membership changes are set-based:
ids are sent to the database a chunk at a time as one list parameter and applied with
``INSERT … SELECT … ON CONFLICT DO NOTHING`` / ``DELETE … WHERE customer IN list``; there is no
Python loop per customer. Writers of one audience are serialised (a row lock on PostgreSQL;
SQLite has one writer, taken at ``BEGIN IMMEDIATE``), so concurrent adds and removes give exact
counts and no duplicates. Memberships with a time-to-live are removed by
``expire_due_memberships`` — the same path, as ``expiry`` operations (docs/expiry.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone

from tagbase.accounts import audit
from tagbase.accounts.actors import Actor
from tagbase.audiences import bulk
from tagbase.audiences.models import (
    MAX_TTL_DAYS,
    Audience,
    Membership,
    Operation,
    OperationAction,
    OperationKind,
    OperationStatus,
    RemovedMembership,
)
from tagbase.customers.erasure import ErasedCustomer
from tagbase.lib.errors import ServiceError
from tagbase.lib.names import InvalidName, audience_name_key, clean_audience_name


class AudienceError(ServiceError):
    """A write was refused. ``code`` is stable (API error code), ``field`` names the input."""

    code = "audience_error"


class AudienceNotFound(AudienceError):
    code = "audience_not_found"


class AudienceNameTaken(AudienceError):
    code = "audience_name_taken"


class InvalidAudienceName(AudienceError):
    code = "audience_name_invalid"


class CannotUndo(AudienceError):
    code = "cannot_undo"


class InvalidTtl(AudienceError):
    code = "ttl_invalid"


@dataclass(frozen=True)
class IdentifierOutcome:
    """What resolving the caller's identifiers found before any membership changed; kept on
    the operation so it tells the whole story of a request."""

    not_found: int = 0
    ambiguous: int = 0
    invalid: int = 0


@dataclass(frozen=True)
class CustomerSelection:
    """Customers chosen by a SQL query instead of an in-memory list, so that millions can be
    added or removed in constant memory (staged import rows, segment members).

    ``sql`` is a SELECT returning one column named ``customer_id``, written by Tagbase code —
    never user text; every value is in ``params``. Duplicates in the selection are allowed.
    """

    sql: str
    params: tuple[object, ...] = ()
    distinct: bool = False  # the caller guarantees each id once: the counts skip a DISTINCT sort
    # The caller guarantees every id is a customer (segment members are read from the customer
    # table): the count skips the join that would look each one up again.
    customers_only: bool = False
    # Evaluate the query once into a temporary table before anything changes, so that the
    # operation's counts agree with what it changed even while the tables the query reads
    # change meanwhile, and a query that reads the audience being changed sees it as it was
    # (a replace always does this).
    stage: bool = False


# --- Audiences ------------------------------------------------------------------------------


def _clean_name(name: str) -> str:
    try:
        return clean_audience_name(name)
    except InvalidName as exc:
        raise InvalidAudienceName(exc.message, field="name", code=exc.code) from None


def create_audience(
    name: str, *, actor: Actor, description: str = "", member_ttl_days: int | None = None
) -> Audience:
    """Create an empty audience, optionally with a default time-to-live for the memberships its
    adds set (``member_ttl_days``; docs/expiry.md). Refuses a name equal to an existing one
    after trimming, NFC and case-folding. Not idempotent: a second call with the same name is
    refused."""
    display = _clean_name(name)
    _check_ttl_days(member_ttl_days, "member_ttl_days")
    if Audience.objects.filter(name_key=audience_name_key(display)).exists():
        raise AudienceNameTaken(f"An audience named {display!r} already exists.", field="name")
    try:
        with transaction.atomic():
            made = Audience.objects.create(
                name=display,
                description=description.strip(),
                created_by=actor.user,
                member_ttl_days=member_ttl_days,
            )
            audit.record(actor, "audience.created", "audience", made.pk, {"name": made.name})
            return made
    except IntegrityError:
        # A concurrent create won the race between the check and the insert.
        raise AudienceNameTaken(
            f"An audience named {display!r} already exists.", field="name"
        ) from None


def get_or_create_audience(name: str, *, actor: Actor) -> tuple[Audience, bool]:
    """The audience with this name (same key), created if missing. Idempotent."""
    display = _clean_name(name)
    existing = Audience.objects.filter(name_key=audience_name_key(display)).first()
    if existing:
        return existing, False
    try:
        return create_audience(display, actor=actor), True
    except AudienceNameTaken:
        return Audience.objects.get(name_key=audience_name_key(display)), False


def rename_audience(
    audience: Audience, name: str, *, actor: Actor, description: str | None = None
) -> Audience:
    """Give an audience a new display name (and optionally description). Members unchanged."""
    display = _clean_name(name)
    key = audience_name_key(display)
    if Audience.objects.filter(name_key=key).exclude(pk=audience.pk).exists():
        raise AudienceNameTaken(f"An audience named {display!r} already exists.", field="name")
    with transaction.atomic():
        locked = _lock_audience(audience.pk)
        before_name, before_description = locked.name, locked.description
        locked.name = display
        if description is not None:
            locked.description = description.strip()
        locked.updated_at = timezone.now()
        try:
            locked.save(update_fields=["name", "name_key", "description", "updated_at"])
        except IntegrityError:
            raise AudienceNameTaken(
                f"An audience named {display!r} already exists.", field="name"
            ) from None
        summary = {
            "name": display,
            "previous_name": before_name,
            "description_changed": locked.description != before_description,
        }
        audit.record(actor, "audience.renamed", "audience", locked.pk, summary)
    return locked


def set_audience_member_ttl(audience: Audience, days: int | None, *, actor: Actor) -> Audience:
    """Set (or, with None, clear) the audience's default time-to-live: how many days after an
    add the memberships it sets expire. It applies to adds from now on; the expiry of current
    members is unchanged (docs/expiry.md says why). Idempotent."""
    _check_ttl_days(days, "member_ttl_days")
    with transaction.atomic():
        locked = _lock_audience(audience.pk)
        summary = {"name": locked.name, "member_ttl_days": days, "previous": locked.member_ttl_days}
        locked.member_ttl_days = days
        locked.updated_at = timezone.now()
        locked.save(update_fields=["member_ttl_days", "updated_at"])
        audit.record(actor, "audience.ttl_changed", "audience", locked.pk, summary)
    return locked


def _check_ttl_days(days: int | None, field: str) -> None:
    if days is not None and not 1 <= days <= MAX_TTL_DAYS:
        raise InvalidTtl(
            f"A time-to-live is 1 to {MAX_TTL_DAYS:,} days; {days} is not.", field=field
        )


def delete_audience(audience: Audience, *, actor: Actor) -> int:
    """Delete an audience, its memberships and its removal ledger, set-based. Operations stay in
    history with the audience's name. Returns the number of memberships deleted."""
    with transaction.atomic():
        locked = _lock_audience(audience.pk)
        deleted = bulk.delete_all_memberships(locked.pk)
        RemovedMembership.objects.filter(audience_id=locked.pk)._raw_delete(
            RemovedMembership.objects.db
        )
        Operation.objects.filter(audience_id=locked.pk).update(audience=None)
        Audience.objects.filter(pk=locked.pk).delete()
        summary = {"name": locked.name, "members": deleted}
        audit.record(actor, "audience.deleted", "audience", locked.pk, summary)
    return deleted


def _lock_audience(audience_id: int) -> Audience:
    try:
        return Audience.objects.select_for_update().get(pk=audience_id)
    except Audience.DoesNotExist:
        raise AudienceNotFound(f"Audience {audience_id} does not exist.") from None


# --- Memberships: the one write path ---------------------------------------------------------


def add_customers_to_audience(
    audience: Audience | int,
    customer_ids: Iterable[int] | CustomerSelection,
    *,
    actor: Actor,
    kind: OperationKind | str,
    source_ref: str = "",
    outcome: IdentifierOutcome | None = None,
    ttl: timedelta | None = None,
) -> Operation:
    """Add customers to an audience as one recorded operation.

    Customers already in the audience are counted as ``already_member`` and keep their original
    date and operation; ids that are not customers are counted as ``not_found``. Idempotent in
    effect: repeating the call adds nothing more. ``customer_ids`` is a list of ids or a
    ``CustomerSelection`` (applied in one set-based statement).

    Expiry (docs/expiry.md): the memberships the add sets expire ``ttl`` after it, or, without
    ``ttl``, after the audience's ``member_ttl_days``, or never. For customers who are members
    already, the add restarts the clock: their expiry moves to the add's if that is later, and
    goes away if the add sets none — an add never shortens a membership.
    """
    return _change(
        audience, customer_ids, OperationAction.ADD, actor, kind, source_ref, outcome, ttl
    )


def remove_customers_from_audience(
    audience: Audience | int,
    customer_ids: Iterable[int] | CustomerSelection,
    *,
    actor: Actor,
    kind: OperationKind | str,
    source_ref: str = "",
    outcome: IdentifierOutcome | None = None,
) -> Operation:
    """Remove customers from an audience as one recorded operation. Each removed membership is
    copied to the removal ledger first. Customers who are not members count as ``not_member``."""
    return _change(audience, customer_ids, OperationAction.REMOVE, actor, kind, source_ref, outcome)


def replace_audience_members(
    audience: Audience | int,
    customers: CustomerSelection,
    *,
    actor: Actor,
    kind: OperationKind | str,
    source_ref: str = "",
    ttl: timedelta | None = None,
) -> Operation:
    """Make the audience's members exactly the customers of a selection, as ONE recorded
    operation (action ``replace``): the members outside the selection go to the removal ledger,
    the customers of the selection who are not members are added, members in both keep their
    original date and operation. The selection is evaluated once, before anything changes, so
    it may read this audience itself (``audience := audience ∩ other``). Undo removes what it
    added and restores what it removed. Idempotent in effect: repeating it changes nothing.
    Expiry as for an add (``ttl``, else the audience's default)."""
    return _change(audience, customers, OperationAction.REPLACE, actor, kind, source_ref, None, ttl)


def _change(
    audience: Audience | int,
    customers: Iterable[int] | CustomerSelection,
    action: OperationAction,
    actor: Actor,
    kind: OperationKind | str,
    source_ref: str,
    outcome: IdentifierOutcome | None,
    ttl: timedelta | None = None,
) -> Operation:
    audience_id = audience.pk if isinstance(audience, Audience) else int(audience)
    outcome = outcome or IdentifierOutcome()
    if ttl is not None and not timedelta(0) < ttl <= timedelta(days=MAX_TTL_DAYS):
        raise InvalidTtl(
            f"A time-to-live is more than 0 and at most {MAX_TTL_DAYS:,} days; {ttl} is not.",
            field="ttl",
        )
    with transaction.atomic():
        locked = _lock_audience(audience_id)
        now = timezone.now()
        expires_at = _expiry_of_add(locked, now, ttl) if action != OperationAction.REMOVE else None
        op = Operation.objects.create(
            audience=locked,
            audience_name=locked.name,
            kind=str(kind),
            action=action,
            actor=actor.user,
            actor_label=actor.label[:150],
            source_ref=source_ref[:200],
            created_at=now,
            not_found=outcome.not_found,
            ambiguous=outcome.ambiguous,
            invalid=outcome.invalid,
        )
        left = 0
        # Renewing the expiry of current members costs one probe of the partial index when the
        # audience has no expiring member (the usual case); then the add is what it always was.
        renew = action != OperationAction.REMOVE and bulk.has_expiring(locked.pk)
        if isinstance(customers, CustomerSelection):
            requested, known, changed, left = _change_selection(
                action, locked.pk, customers, now, op.pk, expires_at, renew
            )
        elif action == OperationAction.REPLACE:
            raise TypeError("a replace takes a CustomerSelection")
        else:
            requested, known, changed = _change_list(
                action, locked.pk, customers, now, op.pk, expires_at, renew
            )
        op.requested = requested
        op.not_found += requested - known
        if action == OperationAction.REMOVE:
            op.removed, op.not_member = changed, known - changed
            delta = -changed
        else:
            op.added, op.already_member = changed, known - changed
            op.removed = left
            delta = changed - left
        op.status = OperationStatus.SUCCEEDED
        op.finished_at = timezone.now()
        op.save()
        _bump_audience(locked, delta, now if action != OperationAction.REMOVE and changed else None)
        _audit_operation(op, actor)
    return op


def _expiry_of_add(audience: Audience, now: datetime, ttl: timedelta | None) -> datetime | None:
    """When the memberships an add sets expire: the add's own time-to-live wins over the
    audience's default; neither means never."""
    if ttl is None and audience.member_ttl_days:
        ttl = timedelta(days=audience.member_ttl_days)
    return now + ttl if ttl is not None else None


def _change_selection(
    action: OperationAction,
    audience_id: int,
    selection: CustomerSelection,
    now: datetime,
    op_id: int,
    expires_at: datetime | None = None,
    renew: bool = False,
) -> tuple[int, int, int, int]:
    """Apply a selection: (requested, known, added or removed, removed by a replace). With
    ``renew``, the members among an add's selection get their expiry renewed first; the
    selection is then staged, so that it is evaluated once for both statements."""
    if not (selection.stage or renew or action == OperationAction.REPLACE):
        return (
            *bulk.change_selection(
                action,
                audience_id,
                selection.sql,
                list(selection.params),
                now,
                op_id,
                distinct=selection.distinct,
                customers_only=selection.customers_only,
                expires_at=expires_at,
            ),
            0,
        )
    staged = bulk.staged_selection(
        selection.sql, list(selection.params), distinct=selection.distinct
    )
    with staged as (sql, params):
        left = 0
        if action == OperationAction.REPLACE:
            left = bulk.remove_outside(audience_id, sql, params, now, op_id)
        step = OperationAction.REMOVE if action == OperationAction.REMOVE else OperationAction.ADD
        if renew:
            bulk.renew_expiry_of_selection(audience_id, sql, params, expires_at)
        requested, known, changed = bulk.change_selection(
            step,
            audience_id,
            sql,
            params,
            now,
            op_id,
            distinct=True,
            customers_only=selection.customers_only,
            expires_at=expires_at,
        )
    return requested, known, changed, left


def _change_list(
    action: OperationAction,
    audience_id: int,
    customer_ids: Iterable[int],
    now: datetime,
    op_id: int,
    expires_at: datetime | None = None,
    renew: bool = False,
) -> tuple[int, int, int]:
    """Apply a list of ids in chunks (one list parameter per statement); with ``renew``, the
    expiry of the members among them is renewed first (``bulk.renew_expiry``)."""
    ids = sorted({int(i) for i in customer_ids})
    known = changed = 0
    for part in bulk.chunks(ids, settings.TAGBASE_MEMBERSHIP_CHUNK):
        if action == OperationAction.ADD:
            if renew:
                bulk.renew_expiry_of_ids(audience_id, part, expires_at)
            k, c = bulk.insert_memberships(audience_id, part, now, op_id, expires_at)
        else:
            k, c = bulk.delete_memberships(audience_id, part, now, op_id)
        known += k
        changed += c
    return len(ids), known, changed


_OPERATION_COUNTS = (
    "requested",
    "added",
    "already_member",
    "removed",
    "not_member",
    "not_found",
    "ambiguous",
    "invalid",
)


def _audit_operation(op: Operation, actor: Actor) -> None:
    """The audit entry of an operation (call in its transaction): ``operation.<action>``, or
    ``operation.undo``, on the audience, with the operation's id, kind and its non-zero counts
    (``requested`` always) — never the customers."""
    summary: dict[str, object] = {"operation": op.pk, "kind": op.kind, "name": op.audience_name}
    if op.undoes_id is not None:
        summary["undoes"] = op.undoes_id
    for field in _OPERATION_COUNTS:
        value = getattr(op, field)
        if value or field == "requested":
            summary[field] = value
    action = "operation.undo" if op.kind == OperationKind.UNDO else f"operation.{op.action}"
    audit.record(actor, action, "audience", op.audience_id, summary)


def _bump_audience(audience: Audience, delta: int, set_at: object | None) -> None:
    fields: dict[str, object] = {"member_count": F("member_count") + delta}
    if set_at is not None:
        fields["last_set_at"] = set_at
    if delta or set_at is not None:
        fields["updated_at"] = timezone.now()
        Audience.objects.filter(pk=audience.pk).update(**fields)


# --- Undo -----------------------------------------------------------------------------------


def undo_operation(
    operation: Operation, *, actor: Actor, kind: OperationKind | str = ""
) -> Operation:
    """Revert what an operation did that still stands, as a new ``undo`` operation.

    Undoing an add removes the members that operation set and that are still set by it (they go
    to the ledger). Undoing a remove restores, from the ledger, the memberships it removed with
    their original date and operation — customers who were members before come back exactly as
    they were — except customers since erased or re-added; a restored membership keeps its
    expiry if that is still ahead, else it comes back without one (so undoing an ``expiry``
    operation brings its customers back for good). Undoing a replace does both. An undo is
    itself not undoable; an operation is undone at most once (a second call is refused).
    """
    with transaction.atomic():
        op = Operation.objects.select_for_update().get(pk=operation.pk)
        if not op.can_undo:
            raise CannotUndo(_why_not_undoable(op), field="operation")
        locked = _lock_audience(op.audience_id)  # type: ignore[arg-type]
        now = timezone.now()
        undo = Operation.objects.create(
            audience=locked,
            audience_name=locked.name,
            kind=OperationKind.UNDO,
            action=_UNDO_ACTION[OperationAction(op.action)],
            actor=actor.user,
            actor_label=actor.label[:150],
            source_ref=f"operation:{op.pk}",
            created_at=now,
            undoes=op,
        )
        if op.action == OperationAction.ADD:
            changed = bulk.delete_memberships_set_by(locked.pk, op.pk, now, undo.pk)
            undo.removed = changed
            undo.requested = op.added
            undo.not_member = op.added - changed
            delta = -changed
        elif op.action == OperationAction.REPLACE:
            # The two halves touch disjoint customers: those it added were not members before,
            # those it removed were members outside the selection.
            removed = bulk.delete_memberships_set_by(locked.pk, op.pk, now, undo.pk)
            restored = bulk.restore_removed_by(locked.pk, op.pk, now)
            undo.removed, undo.added = removed, restored
            undo.requested = op.added + op.removed
            undo.not_member = op.added - removed
            undo.already_member = op.removed - restored
            delta = restored - removed
        else:
            changed = bulk.restore_removed_by(locked.pk, op.pk, now)
            undo.added = changed
            undo.requested = op.removed
            undo.already_member = op.removed - changed
            delta = changed
        undo.status = OperationStatus.SUCCEEDED
        undo.finished_at = timezone.now()
        undo.save()
        op.status = OperationStatus.UNDONE
        op.save(update_fields=["status"])
        _audit_operation(undo, actor)
        Audience.objects.filter(pk=locked.pk).update(
            member_count=F("member_count") + delta, updated_at=now
        )
        _recompute_last_set_at(locked.pk)
    return undo


_UNDO_ACTION = {
    OperationAction.ADD: OperationAction.REMOVE,
    OperationAction.REMOVE: OperationAction.ADD,
    OperationAction.REPLACE: OperationAction.REPLACE,
}


def _why_not_undoable(op: Operation) -> str:
    if op.status == OperationStatus.UNDONE:
        return f"Operation {op.pk} has already been undone."
    if op.kind == OperationKind.UNDO:
        return f"Operation {op.pk} is an undo; it cannot be undone itself."
    if op.kind == OperationKind.ERASURE:
        return f"Operation {op.pk} erased a customer's personal data; it cannot be undone."
    if op.audience_id is None:
        return f"The audience of operation {op.pk} has been deleted."
    return f"Operation {op.pk} is {op.status}; only a succeeded operation can be undone."


def _recompute_last_set_at(audience_id: int) -> None:
    latest = Membership.objects.filter(audience_id=audience_id).aggregate(m=Max("set_at"))["m"]
    Audience.objects.filter(pk=audience_id).update(last_set_at=latest)


# --- Expiry ---------------------------------------------------------------------------------

EXPIRY_ACTOR = Actor.system("expiry")


def expire_due_memberships(
    now: datetime | None = None, *, actor: Actor = EXPIRY_ACTOR
) -> list[Operation]:
    """Remove every membership whose expiry is at or before ``now`` (default: the current
    time): per audience, ONE recorded operation of kind ``expiry`` (action ``remove``) that
    moves its due members to the removal ledger set-based and lowers ``member_count`` in the
    same transaction, so it is undoable like any removal. Returns the operations, in audience
    order; an audience with nothing due gets none.

    Safe to run from every worker at once: each audience is handled under its lock, and whoever
    comes second finds nothing due (no empty operation, nobody removed twice). Idempotent."""
    cutoff = now if now is not None else timezone.now()
    done = []
    for audience_id in bulk.audiences_with_due(cutoff):
        op = _expire_audience(audience_id, cutoff, actor)
        if op is not None:
            done.append(op)
    return done


def _expire_audience(audience_id: int, cutoff: datetime, actor: Actor) -> Operation | None:
    with transaction.atomic():
        try:
            locked = _lock_audience(audience_id)
        except AudienceNotFound:
            return None  # deleted since it was found
        if not bulk.has_due(locked.pk, cutoff):
            return None  # another worker was first, or an add renewed them meanwhile
        now = timezone.now()
        op = Operation.objects.create(
            audience=locked,
            audience_name=locked.name,
            kind=OperationKind.EXPIRY,
            action=OperationAction.REMOVE,
            actor=actor.user,
            actor_label=actor.label[:150],
            source_ref=f"expires_at<={cutoff.isoformat()}"[:200],
            created_at=now,
        )
        removed = bulk.remove_due(locked.pk, cutoff, now, op.pk)
        op.requested = op.removed = removed
        op.status = OperationStatus.SUCCEEDED
        op.finished_at = timezone.now()
        op.save()
        _bump_audience(locked, -removed, None)
        _audit_operation(op, actor)
    return op


# --- Reconcile ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Drift:
    audience_id: int
    name: str
    stored: int
    actual: int


def reconcile_member_counts(*, fix: bool = True) -> list[Drift]:
    """Recompute every audience's member count from its rows; return the audiences whose stored
    count was wrong and, with ``fix``, correct them (each under its audience lock)."""
    drifts = [Drift(audience_id=a, name=n, stored=s, actual=c) for a, n, s, c in bulk.count_drift()]
    if fix:
        for drift in drifts:
            with transaction.atomic():
                _lock_audience(drift.audience_id)
                actual = Membership.objects.filter(audience_id=drift.audience_id).count()
                Audience.objects.filter(pk=drift.audience_id).update(member_count=actual)
    return drifts


def remove_customers_from_all_audiences(
    customer_ids: Iterable[int], *, actor: Actor, kind: OperationKind | str, source_ref: str = ""
) -> int:
    """Remove customers from every audience they are in (used before a customer is deleted).
    One recorded operation per audience touched. Returns memberships removed."""
    ids = sorted({int(i) for i in customer_ids})
    if not ids:
        return 0
    audience_ids = sorted(
        set(Membership.objects.filter(customer_id__in=ids).values_list("audience_id", flat=True))
    )
    total = 0
    for audience_id in audience_ids:
        op = remove_customers_from_audience(
            audience_id, ids, actor=actor, kind=kind, source_ref=source_ref
        )
        total += op.removed
    return total


# --- Erasure (docs/privacy.md) ----------------------------------------------------------------


def erase_customer(
    customer: ErasedCustomer, prepared: object = None, *, actor: Actor
) -> dict[str, int]:
    """The audiences' part of erasing a customer (registered as an eraser in ``apps.py``; runs
    inside ``customers.services.erase_customer``'s transaction): remove them from every audience
    they are in, through the one write path — one recorded, non-undoable ``erasure`` operation
    per audience, so every ``member_count`` stays exact and the history says what happened.

    The removal ledger keeps the customer's past memberships (now also these): they hold only
    the ``sc_id``, and the history of each audience (its members as of a date, the counts of its
    operations) stays true. Undoing an earlier removal never brings an erased customer back: a
    restore skips customers that no longer exist. Idempotent: a customer in no audience gets no
    operation."""
    removed = remove_customers_from_all_audiences(
        [customer.sc_id],
        actor=actor,
        kind=OperationKind.ERASURE,
        source_ref=f"erasure:{customer.sc_id}",
    )
    ledger = RemovedMembership.objects.filter(customer_id=customer.sc_id).count()
    return {"memberships_removed": removed, "ledger_rows_kept": ledger}
