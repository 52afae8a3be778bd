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


TOKEN_PREFIX = "tb_"  # noqa: S105 - a public prefix, not a secret


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
