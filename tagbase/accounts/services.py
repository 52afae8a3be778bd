"""Writes to accounts: API tokens for partner systems.

Who may call these is the entry point's business (only admins manage tokens in the UI and the
CLI); the services check the input and record who acted.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from tagbase.accounts import audit
from tagbase.accounts.actors import Actor
from tagbase.accounts.models import ApiToken, Scope, hash_token

MAX_TOKEN_NAME_LENGTH = 100


class TokenError(ValueError):
    """A token request was refused; ``code`` is stable, ``field`` names the input."""

    def __init__(self, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def create_api_token(name: str, scopes: Iterable[str], *, actor: Actor) -> tuple[ApiToken, str]:
    """Create a token for a partner system; return it and its secret.

    The secret is returned only here: the database keeps its SHA-256 (``key_hash``) and its
    first characters (``key_prefix``) to recognise it in lists. ``scopes`` must be non-empty
    and each one of ``Scope``; duplicates are dropped and the order is fixed. Not idempotent:
    every call makes a new token with a new secret.
    """
    clean_name = _clean_token_name(name)
    clean_scopes = _clean_scopes(scopes)
    secret = ApiToken.generate_secret()
    with transaction.atomic():
        token = ApiToken.objects.create(
            name=clean_name,
            key_prefix=secret[:10],
            key_hash=hash_token(secret),
            scopes=clean_scopes,
            created_by=actor.user,
        )
        audit.record(actor, "token.created", "token", token.pk, _token_summary(token))
    return token, secret


def revoke_api_token(token: ApiToken, *, actor: Actor) -> ApiToken:
    """Revoke a token: from now on every request with it is refused (401).

    Idempotent: revoking a revoked token keeps the first revocation time. The row stays, so
    operations made with the token remain attributable.
    """
    # One conditional UPDATE: of two concurrent revocations the first time stays (and only
    # the first is recorded).
    with transaction.atomic():
        revoked = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
        if revoked:
            audit.record(actor, "token.revoked", "token", token.pk, _token_summary(token))
    token.refresh_from_db(fields=["revoked_at"])
    return token


def _token_summary(token: ApiToken) -> dict[str, object]:
    return {"name": token.name, "scopes": ",".join(token.scopes)}


def _clean_token_name(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise TokenError("token_name_empty", "The token needs a name.", field="name")
    clean = name.strip()
    if len(clean) > MAX_TOKEN_NAME_LENGTH:
        raise TokenError(
            "token_name_too_long",
            f"The name has {len(clean)} characters; at most {MAX_TOKEN_NAME_LENGTH}.",
            field="name",
        )
    if not clean.isprintable():
        raise TokenError(
            "token_name_control_character",
            "The name contains a control character.",
            field="name",
        )
    return clean


def _clean_scopes(scopes: Iterable[str]) -> list[str]:
    if isinstance(scopes, str):
        # A bare "read,write" would otherwise be iterated letter by letter.
        scopes = [s for s in scopes.replace(" ", ",").split(",") if s]
    given = {str(s).strip().lower() for s in scopes}
    unknown = sorted(given - set(Scope.values))
    if unknown:
        raise TokenError(
            "token_scope_unknown",
            f"Unknown scope {', '.join(unknown)}; expected any of {', '.join(Scope.values)}.",
            field="scopes",
        )
    if not given:
        raise TokenError("token_scope_empty", "Give the token at least one scope.", field="scopes")
    return [s for s in Scope.values if s in given]
