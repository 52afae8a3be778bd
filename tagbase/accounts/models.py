"""Users with a role, and API tokens for partner systems.

Roles (see docs/glossary.md): ``admin`` may do everything, including users and tokens;
``marketer`` works with audiences, imports, segments and campaigns; ``analyst`` reads only.
"""

from __future__ import annotations

import hashlib
import secrets

from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MARKETER = "marketer", "Marketer"
    ANALYST = "analyst", "Analyst"


class User(AbstractUser):
    """A person who logs in to the UI. ``role`` decides what they may change."""

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MARKETER)

    @property
    def can_write(self) -> bool:
        return self.is_superuser or self.role in {Role.ADMIN, Role.MARKETER}

    @property
    def is_admin(self) -> bool:
        return self.is_superuser or self.role == Role.ADMIN


class Scope(models.TextChoices):
    READ = "read", "Read"
    WRITE = "write", "Write"
    IMPORT = "import", "Import"
    EVENTS = "events", "Events"
    AUDIT = "audit", "Audit log (read)"
    # POST /customers/{sc_id}/erase: erase a customer's personal data (docs/privacy.md).
    ERASE = "erase", "Erase personal data"


TOKEN_PREFIX = "tb_"  # noqa: S105  # nosec B105  # a public prefix, not a secret


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet["ApiToken"]):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True)


class ApiToken(models.Model):
    """A bearer token for one partner system. Only the SHA-256 of the secret is stored;
    the secret is shown once, when the token is created."""

    name = models.CharField(max_length=100)
    key_prefix = models.CharField(max_length=12, help_text="First characters, to recognise it")
    key_hash = models.CharField(max_length=64, unique=True)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @staticmethod
    def generate_secret() -> str:
        return TOKEN_PREFIX + secrets.token_urlsafe(32)

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


# --- Audit log --------------------------------------------------------------------------------


class AuditLogIsAppendOnly(RuntimeError):
    """Raised on any attempt to change or delete an audit entry through the ORM."""


class AuditEntryQuerySet(models.QuerySet["AuditEntry"]):
    """Reads only: the set-based writes that would change or remove entries are refused."""

    def update(self, **kwargs: object) -> int:
        raise AuditLogIsAppendOnly("The audit log is append-only: entries cannot be updated.")

    def delete(self) -> tuple[int, dict[str, int]]:
        raise AuditLogIsAppendOnly("The audit log is append-only: entries cannot be deleted.")

    def bulk_update(self, *args: object, **kwargs: object) -> int:  # type: ignore[override]
        raise AuditLogIsAppendOnly("The audit log is append-only: entries cannot be updated.")


class AuditEntry(models.Model):
    """One thing someone did: who (``actor_*``), what (``action``), to what (``target_type``,
    ``target_id``), when (``at``), and a few facts about it (``summary``). Written only by
    ``tagbase.accounts.audit.record``, in the same transaction as the change it describes.

    Append-only (docs/audit.md): ``save`` of an existing row, ``delete`` and the queryset's
    ``update``/``delete`` raise ``AuditLogIsAppendOnly``, and database triggers refuse
    ``UPDATE`` and ``DELETE`` of the table on both engines (migration 0002). The actor's user
    and token are kept as plain ids, not foreign keys, so deleting a user or a token neither
    cascades into the log nor needs to update it; ``actor_label`` keeps the name they had.
    ``summary`` holds ids, counts, flags and names of audiences, segments, campaigns and
    tokens — never customer data (``record`` accepts only scalar values).
    """

    at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_kind = models.CharField(
        max_length=16, help_text="user, token, system (CLI, worker, demo) or anonymous"
    )
    actor_label = models.CharField(
        max_length=150, help_text="User name, token:<name>, or the system's label (cli:<OS user>)"
    )
    actor_user_id = models.BigIntegerField(null=True, blank=True)
    actor_token_id = models.BigIntegerField(null=True, blank=True)
    action = models.CharField(max_length=64, help_text="<target>.<what happened>; docs/audit.md")
    target_type = models.CharField(max_length=32)
    target_id = models.BigIntegerField(null=True, blank=True)
    summary = models.JSONField(default=dict, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(fields=["action", "-id"], name="audit_action_idx"),
            models.Index(fields=["actor_label", "-id"], name="audit_actor_idx"),
            models.Index(fields=["target_type", "target_id", "-id"], name="audit_target_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_label} {self.action}"

    def save(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not self._state.adding or self.pk is not None:
            raise AuditLogIsAppendOnly("The audit log is append-only: entries cannot be changed.")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise AuditLogIsAppendOnly("The audit log is append-only: entries cannot be deleted.")
