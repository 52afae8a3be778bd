"""The audit log: who did what, append-only, with no personal data (docs/audit.md).

``record(actor, action, target_type, target_id, summary)`` is the one write. Each service calls
it inside its own transaction, right after the change it describes, so the entry commits with
the change or not at all: a refused or rolled-back change leaves no entry. It lives in
``accounts`` — the lowest app — so that every app may call it.

What may be recorded is fixed here: ``ACTIONS`` (each ``<target>.<what happened>``) and
``TARGET_TYPES``; an unknown one is a programming error (``ValueError``), so the catalogue in
docs/audit.md cannot drift from the code. A summary holds scalars only — ids, counts, flags,
statuses and the names of audiences, segments, campaigns and tokens — so a caller cannot put a
list of customers, a file's rows or a rule's values into the log by accident. Never put
customer identifiers, contacts, free text (descriptions) or file names in a summary.

Also here: the login receivers (Django's ``user_logged_in`` / ``user_login_failed`` /
``user_logged_out`` signals) and the SQLite function the table's DELETE trigger consults
(``tagbase_audit_unlocked``; only the ``flush`` command unlocks it).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.backends.signals import connection_created
from django.db.models import QuerySet
from django.utils import timezone

from tagbase.accounts.actors import Actor
from tagbase.accounts.models import AuditEntry, User

# action -> what it means. The order is the order of the UI's filter.
ACTIONS: dict[str, str] = {
    "user.logged_in": "Logged in",
    "user.login_failed": "Login failed",
    "user.logged_out": "Logged out",
    "token.created": "API token created",
    "token.revoked": "API token revoked",
    "token.used": "API token used (one entry a minute at most)",
    "audience.created": "Audience created",
    "audience.renamed": "Audience renamed",
    "audience.ttl_changed": "Audience time-to-live changed",
    "audience.deleted": "Audience deleted",
    "operation.add": "Customers added to an audience",
    "operation.remove": "Customers removed from an audience",
    "operation.replace": "Audience members replaced",
    "operation.undo": "Operation undone",
    "import.started": "Import started",
    "import.committed": "Import preview committed",
    "import.applied": "Import applied",
    "import.cancelled": "Import cancelled",
    "import.undone": "Import undone",
    "segment.created": "Segment created",
    "segment.updated": "Segment changed",
    "segment.deleted": "Segment deleted",
    "segment.included": "Segment included in an audience",
    "campaign.created": "Campaign created",
    "campaign.updated": "Campaign changed",
    "campaign.activated": "Campaign activated",
    "campaign.suspended": "Campaign suspended",
    "campaign.deactivated": "Campaign deactivated",
    "campaign.deleted": "Campaign deleted",
    "set.combined": "Set operation into an audience",
    "customer.erased": "A customer's personal data erased",
}
TARGET_TYPES: dict[str, str] = {
    "user": "User",
    "token": "API token",  # nosec B105  # a label shown to people, not a password
    "audience": "Audience",
    "import": "Import",
    "segment": "Segment",
    "campaign": "Campaign",
    # The erasure record (customers.Erasure), never the customer: the log holds no customer ids.
    "erasure": "Customer erasure",
}
ACTOR_KINDS = ("user", "token", "system", "anonymous")
# Filtering by "segment." finds every segment action.
_ACTION_GROUPS = {action.split(".", 1)[0] + "." for action in ACTIONS}

# Who tries to log in before they are anyone.
ANONYMOUS = Actor(user=None, label="anonymous")
MAX_TEXT = 300  # a summary string longer than this is cut (names are at most 200 characters)
MAX_KEY = 40


def record(
    actor: Actor,
    action: str,
    target_type: str,
    target_id: int | None,
    summary: Mapping[str, object] | None = None,
) -> AuditEntry:
    """Append one entry. Call it inside the transaction of the change it describes (it opens
    none itself: in autocommit it commits alone). Raises ``ValueError`` for an action or target
    type missing from the catalogue and ``TypeError`` for a summary value that is not a scalar.
    Not idempotent: every call appends."""
    if action not in ACTIONS:
        raise ValueError(
            f"Unknown audit action {action!r}: add it to ACTIONS in tagbase/accounts/audit.py "
            "and to docs/audit.md."
        )
    if target_type not in TARGET_TYPES:
        raise ValueError(f"Unknown audit target type {target_type!r}: see TARGET_TYPES.")
    kind = actor_kind(actor)
    return AuditEntry.objects.create(
        at=timezone.now(),
        actor_kind=kind,
        actor_label=actor.label[:150],
        actor_user_id=actor.user.pk if kind == "user" and actor.user is not None else None,
        actor_token_id=actor.token.pk if actor.token is not None else None,
        action=action,
        target_type=target_type,
        target_id=target_id,
        summary=_clean_summary(summary or {}),
    )


def actor_kind(actor: Actor) -> str:
    if actor.token is not None:
        return "token"
    if actor.user is not None:
        return "user"
    return "anonymous" if actor is ANONYMOUS else "system"


def _clean_summary(summary: Mapping[str, object]) -> dict[str, object]:
    clean: dict[str, object] = {}
    for key, value in summary.items():
        if not isinstance(key, str) or not key or len(key) > MAX_KEY:
            raise TypeError(f"Audit summary keys are short strings; got {key!r}.")
        if isinstance(value, str):
            clean[key] = value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"
        elif value is None or isinstance(value, bool | int | float):
            clean[key] = value
        else:
            # No lists or mappings: a set of customers must never reach the log.
            raise TypeError(
                f"Audit summary {key!r} is a {type(value).__name__}; only str, int, float, "
                "bool and None may be recorded."
            )
    return clean


# --- Reading ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditFilter:
    """What the UI, the API and the CLI filter by; empty fields do not filter."""

    actor: str = ""  # actor_label, exactly (a user name, token:<name>, cli:<user>)
    action: str = ""  # one action, or a prefix ending in "." (``segment.``: every segment one)
    target_type: str = ""
    target_id: int | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


class InvalidAuditFilter(ValueError):
    """A filter value that cannot be used; ``field`` names it (``since``, ``action``…)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def make_filter(
    *,
    actor: str = "",
    action: str = "",
    target_type: str = "",
    target_id: int | None = None,
    since: str = "",
    until: str = "",
) -> AuditFilter:
    """The filter from the text the UI, the API and the CLI receive; raises
    ``InvalidAuditFilter`` naming the first value that is not usable."""
    action, target_type = action.strip(), target_type.strip()
    if "\x00" in actor:
        raise InvalidAuditFilter("actor", "The actor contains the NUL character (U+0000).")
    if action and action not in ACTIONS and action not in _ACTION_GROUPS:
        raise InvalidAuditFilter(
            "action", f"Unknown action {action[:80]!r}; see docs/audit.md for the list."
        )
    if target_type and target_type not in TARGET_TYPES:
        raise InvalidAuditFilter(
            "target_type",
            f"Unknown target type {target_type[:80]!r}; use one of {', '.join(TARGET_TYPES)}.",
        )
    start = parse_moment(since, field="since") if since.strip() else None
    end = parse_moment(until, field="until", end_of_day=True) if until.strip() else None
    if start is not None and end is not None and end <= start:
        raise InvalidAuditFilter("until", "The end of the period is not after its start.")
    return AuditFilter(
        actor=actor.strip()[:150],
        action=action,
        target_type=target_type,
        target_id=target_id,
        since=start,
        until=end,
    )


def parse_moment(text: str, *, field: str, end_of_day: bool = False) -> datetime:
    """``YYYY-MM-DD`` — a day in TIME_ZONE: its start, or with ``end_of_day`` the start of the
    next day, so that a period's last day is included — or an ISO 8601 moment (one without a
    UTC offset is read in TIME_ZONE)."""
    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            moment = datetime.combine(day + timedelta(days=int(end_of_day)), time())
        else:
            moment = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise InvalidAuditFilter(
            field, f"{text[:40]!r} is not a date (2026-12-31) or a moment (2026-12-31T18:00)."
        ) from None
    if not 1900 <= moment.year <= 9000:  # far dates overflow when moved to UTC
        raise InvalidAuditFilter(field, f"The year {moment.year} is outside 1900 to 9000.")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def find_entries(where: AuditFilter) -> QuerySet[AuditEntry]:
    """Entries matching the filter, newest first (by id: the order they were written)."""
    found = AuditEntry.objects.order_by("-id")
    if where.actor:
        found = found.filter(actor_label=where.actor)
    if where.action.endswith("."):
        found = found.filter(action__startswith=where.action)
    elif where.action:
        found = found.filter(action=where.action)
    if where.target_type:
        found = found.filter(target_type=where.target_type)
    if where.target_id is not None:
        found = found.filter(target_id=where.target_id)
    if where.since is not None:
        found = found.filter(at__gte=where.since)
    if where.until is not None:
        found = found.filter(at__lt=where.until)
    return found


def action_choices() -> list[tuple[str, str]]:
    """Every action and, before each group, the group's prefix (``segment.``) to filter by."""
    choices: list[tuple[str, str]] = []
    for action, label in ACTIONS.items():
        group = action.split(".", 1)[0] + "."
        if not any(value == group for value, _ in choices):
            choices.append((group, f"{group}* (all)"))
        choices.append((action, f"{action} — {label}"))
    return choices


# --- Logins -----------------------------------------------------------------------------------


def _logged_in(sender: object, request: object, user: User, **kwargs: Any) -> None:
    record(Actor.of_user(user), "user.logged_in", "user", user.pk)


def _logged_out(sender: object, request: object, user: User | None, **kwargs: Any) -> None:
    if user is not None and user.is_authenticated:
        record(Actor.of_user(user), "user.logged_out", "user", user.pk)


def _login_failed(
    sender: object, credentials: Mapping[str, object], request: object = None, **kwargs: Any
) -> None:
    """Only a user name that names an existing user is kept: people type passwords, e-mail
    addresses and phone numbers into the user name field, and those must not reach the log.
    The password never does (Django passes it masked; it is not read here)."""
    typed = credentials.get(User.USERNAME_FIELD)
    known = None
    if isinstance(typed, str) and 0 < len(typed) <= 150 and "\x00" not in typed:
        known = User.objects.filter(**{User.USERNAME_FIELD: typed}).first()
    if known is not None:
        record(ANONYMOUS, "user.login_failed", "user", known.pk, {"username": typed})
    else:
        record(ANONYMOUS, "user.login_failed", "user", None, {"username_known": False})


# --- SQLite: the DELETE trigger's switch ------------------------------------------------------

_unlocked = threading.local()


def _is_unlocked() -> int:
    return 1 if getattr(_unlocked, "depth", 0) else 0


@contextmanager
def unlocked_for_flush() -> Iterator[None]:
    """Let this thread's SQLite connections delete audit entries: used only by the ``flush``
    command, which empties every table (tests between transactional cases). PostgreSQL's flush
    is a TRUNCATE, which the row triggers do not see, so nothing is unlocked there."""
    _unlocked.depth = getattr(_unlocked, "depth", 0) + 1
    try:
        yield
    finally:
        _unlocked.depth -= 1


def _on_connect(sender: object, connection: Any, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function("tagbase_audit_unlocked", 0, _is_unlocked)


def connect_signals() -> None:
    """Called once by ``AccountsConfig.ready``."""
    connection_created.connect(_on_connect, dispatch_uid="tagbase_audit_sqlite")
    user_logged_in.connect(_logged_in, dispatch_uid="tagbase_audit_logged_in")
    user_logged_out.connect(_logged_out, dispatch_uid="tagbase_audit_logged_out")
    user_login_failed.connect(_login_failed, dispatch_uid="tagbase_audit_login_failed")
