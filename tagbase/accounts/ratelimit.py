"""Rate limits on the two ways in: API requests per token, and log-in attempts.

- **API**: at most ``TAGBASE_API_RATE_LIMIT`` requests a minute per token (every request with
  a valid token counts, refused or not). Over it, ``TokenAuth`` answers 429 ``rate_limited``
  with ``Retry-After``. The UI's own calls (session) are not limited.
- **Log-in**: at most ``TAGBASE_LOGIN_RATE_LIMIT`` failed attempts per user name and client
  address in ``TAGBASE_LOGIN_RATE_WINDOW_SECONDS``. Each attempt is counted *before* the
  password is checked (so parallel guesses cannot slip past the count) and given back when it
  succeeds; over the limit the password is not checked at all and the form says when to try
  again (``LoginForm``). Per name *and* address, so a guesser elsewhere cannot lock a user out.

The counters are fixed windows in Django's cache (``tagbase.lib.ratelimit``).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from tagbase.accounts.models import ApiToken
from tagbase.lib import ratelimit
from tagbase.lib.ratelimit import Count

API_WINDOW_SECONDS = 60


def count_token_request(token: ApiToken) -> Count | None:
    """Count one request with ``token``; the count if it is over the limit, else None."""
    limit = settings.TAGBASE_API_RATE_LIMIT
    if not limit:
        return None
    count = ratelimit.hit("api", str(token.pk), API_WINDOW_SECONDS)
    return count if count.hits > limit else None


def _login_subject(request: HttpRequest | None, username: str) -> str:
    address = ratelimit.client_ip(request, settings.TAGBASE_TRUSTED_PROXIES) if request else ""
    # Case-folded: ``Alice`` and ``alice`` share one counter.
    return f"{username.strip().casefold()}\n{address}"


def count_login_attempt(request: HttpRequest | None, username: str) -> Count | None:
    """Count one log-in attempt; the count if it is over the limit, else None."""
    limit = settings.TAGBASE_LOGIN_RATE_LIMIT
    if not limit:
        return None
    window = settings.TAGBASE_LOGIN_RATE_WINDOW_SECONDS
    count = ratelimit.hit("login", _login_subject(request, username), window)
    return count if count.hits > limit else None


def forget_login_attempt(request: HttpRequest | None, username: str) -> None:
    """The attempt succeeded: it does not count against the limit."""
    if settings.TAGBASE_LOGIN_RATE_LIMIT:
        window = settings.TAGBASE_LOGIN_RATE_WINDOW_SECONDS
        ratelimit.give_back("login", _login_subject(request, username), window)
