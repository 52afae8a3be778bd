"""Who is calling the REST API, whether they may, and the shape of every refusal.

Two ways in (see docs/api.md):
- ``Authorization: Bearer <token>`` for partner systems. The token's SHA-256 is looked up in
  ``ApiToken.key_hash``; a revoked token is refused. The scope needed follows the method:
  ``read`` for GET/HEAD/OPTIONS, ``write`` for everything else; file imports need ``import``
  (``events`` is reserved for the events endpoints to come). Each request with a valid token
  counts against the token's rate limit (``accounts.ratelimit``): over it, 429 ``rate_limited``.
- The Django session, for the UI's own calls. Unsafe methods need the CSRF token, and a user
  whose role may not write (analyst) may only read.

Both live here rather than in ``tagbase.api`` because every app's ``api`` module raises
``ApiError`` and declares ``ErrorOut``, and ``accounts`` is the one app they may all import.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from ninja import Field, Schema
from ninja.errors import HttpError
from ninja.security import APIKeyCookie, HttpBearer
from ninja.utils import check_csrf

from tagbase.accounts import audit, ratelimit
from tagbase.accounts.actors import Actor
from tagbase.accounts.models import ApiToken, Scope, User, hash_token

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# last_used_at is for people ("used today?"), so one write a minute per token is plenty and
# keeps a busy partner from turning every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


# --- Errors -----------------------------------------------------------------------------------


class ErrorDetail(Schema):
    field: str | None = Field(description="Where: a body field (ids.3), a query or path name")
    code: str
    message: str


class ErrorBody(Schema):
    code: str = Field(description="Stable, for programs: validation_error, audience_not_found…")
    message: str = Field(description="For people: what is wrong and where")
    field: str | None = Field(description="The input the error is about, or null")
    details: list[ErrorDetail] | None = Field(
        None, description="Every problem, for validation_error and invalid_identifier"
    )
    node: str | None = Field(
        None, description="Campaign graph errors only: the id of the node the error is about"
    )


class ErrorOut(Schema):
    """Every error the API answers with: ``{"error": {"code", "message", "field"}}``."""

    error: ErrorBody


class ApiError(HttpError):
    """A refusal with a stable ``code`` and the input ``field`` it concerns (or None)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(status, message)
        self.code = code
        self.field = field
        self.headers = headers or {}  # sent with the error response (Retry-After…)


class NotAuthenticated(ApiError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(401, code, message)


class Forbidden(ApiError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(403, code, message)


class RateLimited(ApiError):
    """429: the token made more requests this minute than TAGBASE_API_RATE_LIMIT allows."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            429,
            "rate_limited",
            f"Too many requests with this token: at most {limit} a minute. "
            f"Try again in {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )


# Statuses any authenticated route may answer with; routes add their own (404, 409…).
COMMON_ERROR_STATUSES = (401, 403, 422, 429, 500)


def error_responses(*statuses: int) -> dict[int, type[ErrorOut]]:
    """The ``response=`` entries for a route's errors, so the OpenAPI schema lists them."""
    return dict.fromkeys(sorted({*COMMON_ERROR_STATUSES, *statuses}), ErrorOut)


# --- Authentication ---------------------------------------------------------------------------


def required_scope(request: HttpRequest, scope: str | None = None) -> str:
    if scope:
        return scope
    return str(Scope.READ if request.method in SAFE_METHODS else Scope.WRITE)


class TokenAuth(HttpBearer):
    """``Authorization: Bearer <token>``. Returns the ApiToken; raises 401/403 ApiErrors."""

    def __init__(self, scope: str | None = None) -> None:
        self.scope = scope
        super().__init__()

    def __call__(self, request: HttpRequest) -> ApiToken | None:
        header = request.headers.get("Authorization")
        if not header:
            return None  # let the session have a go
        scheme, _, secret = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not secret.strip():
            raise NotAuthenticated(
                "malformed_authorization",
                "Send the token in the header as 'Authorization: Bearer <token>'.",
            )
        return self.authenticate(request, secret.strip())

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken:
        found = (
            ApiToken.objects.select_related("created_by").filter(key_hash=hash_token(token)).first()
        )
        if found is None:
            raise NotAuthenticated("invalid_token", "The token is not valid.")
        if found.revoked_at is not None:
            raise NotAuthenticated("token_revoked", "The token has been revoked.")
        over = ratelimit.count_token_request(found)
        if over is not None:
            raise RateLimited(settings.TAGBASE_API_RATE_LIMIT, over.retry_after)
        scope = required_scope(request, self.scope)
        if not found.has_scope(scope):
            raise Forbidden(
                "missing_scope",
                f"The token lacks the {scope!r} scope, which {request.method} requests to this "
                "endpoint need.",
            )
        _touch(found)
        return found


def _touch(token: ApiToken) -> None:
    """Record use, at most once per LAST_USED_RESOLUTION (one conditional UPDATE). The process
    whose UPDATE wins also appends the ``token.used`` audit entry, in the same transaction, so
    the log has at most one such entry per token per minute, however many processes serve it."""
    now = timezone.now()
    cutoff = now - LAST_USED_RESOLUTION
    if token.last_used_at is not None and token.last_used_at > cutoff:
        return
    # savepoint=False: inside a caller's transaction the two writes share it; alone, they get
    # their own. Either way they commit together.
    with transaction.atomic(savepoint=False):
        touched = (
            ApiToken.objects.filter(pk=token.pk)
            .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lte=cutoff))
            .update(last_used_at=now)
        )
        if touched:
            audit.record(Actor.of_token(token), "token.used", "token", token.pk)
    token.last_used_at = now


class SessionAuth(APIKeyCookie):
    """The logged-in user of the UI. Unsafe methods need the CSRF token; analysts only read."""

    param_name: str = settings.SESSION_COOKIE_NAME

    def __init__(self, scope: str | None = None) -> None:
        self.scope = scope
        super().__init__(csrf=True)

    def __call__(self, request: HttpRequest) -> User | None:
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        return self.authenticate(request, None)

    def authenticate(self, request: HttpRequest, key: str | None) -> User:
        user: User = request.user  # type: ignore[assignment]
        if request.method not in SAFE_METHODS and check_csrf(request) is not None:
            raise Forbidden(
                "csrf_failed",
                "CSRF check failed: send the csrftoken cookie's value in the X-CSRFToken header.",
            )
        scope = required_scope(request, self.scope)
        if scope != Scope.READ and not user.can_write:
            raise Forbidden("forbidden", f"Your role ({user.get_role_display()}) may only read.")
        return user


def api_auth(scope: str | None = None) -> list[Any]:
    """The API's authentication: a bearer token first, else the session."""
    return [TokenAuth(scope), SessionAuth(scope)]


def not_authenticated() -> NotAuthenticated:
    """What a request with neither a token nor a session gets."""
    return NotAuthenticated(
        "not_authenticated",
        "Authentication required: send 'Authorization: Bearer <token>' (or log in to the UI).",
    )


# --- Who acted --------------------------------------------------------------------------------


def actor_of(request: HttpRequest) -> Actor:
    """The Actor to record on writes: the token's partner system or the logged-in user."""
    principal = request.auth  # type: ignore[attr-defined]
    if isinstance(principal, ApiToken):
        return Actor.of_token(principal)
    return Actor.of_user(principal)


def source_ref_of(request: HttpRequest) -> str:
    """What caused a write, for Operation.source_ref: ``token:<id>`` or ``api``."""
    principal = request.auth  # type: ignore[attr-defined]
    if isinstance(principal, ApiToken):
        return f"token:{principal.pk}"
    return "api"
