"""Creating a login from the command line (``tagbase createuser`` and ``tagbase serve``).

This is a write use case with no web counterpart yet; if ``accounts.services`` gains a
``create_user`` service, both commands should call that instead.
"""

from __future__ import annotations

import secrets

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from tagbase.accounts.models import Role, User


class LoginError(ValueError):
    """A login could not be created; the message says why, in one line."""


def generate_password() -> str:
    """A random password that passes the configured validators (about 96 bits)."""
    return secrets.token_urlsafe(12)


def create_login(username: str, password: str, *, role: str = Role.MARKETER) -> User:
    """Create a user with a role. An ``admin`` is also staff and superuser, so that it reaches
    Django's admin site too. Not idempotent: an existing username is refused."""
    username = username.strip()
    if not username:
        raise LoginError("The username is empty.")
    try:
        User.username_validator(username)
    except ValidationError as exc:
        raise LoginError(f"Invalid username: {' '.join(exc.messages)}") from None
    if len(username) > 150:
        raise LoginError("The username is longer than 150 characters.")
    if role not in Role.values:
        raise LoginError(f"Unknown role {role!r}; use one of {', '.join(Role.values)}.")
    if User.objects.filter(username__iexact=username).exists():
        raise LoginError(f"A user named {username!r} already exists.")
    user = User(username=username, role=role)
    user.is_staff = user.is_superuser = role == Role.ADMIN
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise LoginError("The password is not accepted: " + " ".join(exc.messages)) from None
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError:  # created concurrently between the check and the insert
        raise LoginError(f"A user named {username!r} already exists.") from None
    return user
