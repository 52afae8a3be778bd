"""Fixed-window counters in Django's cache, for rate limits (see docs/settings.md).

A window is a slice of wall-clock time (``[k * seconds, (k + 1) * seconds)``); each (name,
subject, window) has one counter, created with ``cache.add`` and raised with ``cache.incr``.
The counter lives only as long as its window, so nothing has to be cleaned up. A client can
fit up to twice the limit around a window's edge: accepted, for a guard against runaway
clients and password guessing, in exchange for one cache round trip per request.

The counters are as shared as the cache is: Django's default ``LocMemCache`` counts per
process, the database cache and Redis count across every process (``TAGBASE_CACHE``). With
Redis and ``LocMemCache`` ``incr`` is atomic; the database cache reads and writes, so under
heavy concurrency it can miss a few increments — a limit that is a little soft, never a
client refused below its limit.

If the cache fails (Redis down, the cache table missing), the request is let through and the
error logged: a broken cache must not take the API and the login page down with it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from dataclasses import dataclass

from django.core.cache import cache
from django.http import HttpRequest

logger = logging.getLogger("tagbase.ratelimit")


@dataclass(frozen=True)
class Count:
    """The state of one counter after a hit: ``hits`` in the current window (this one
    included) and ``retry_after``, the whole seconds until the window ends (at least 1)."""

    hits: int
    retry_after: int


def _now() -> float:
    return time.time()  # a function, so tests can move the clock


def hit(name: str, subject: str, window_seconds: int) -> Count:
    """Count one hit for ``subject`` (a token id, a user name and address…) under ``name``.

    ``subject`` may be any text: it is hashed into the key, so neither its characters nor
    its length reach the cache backend, and no user name is stored in the cache in clear.
    Returns ``hits == 0`` if the cache failed (the caller lets the request through).
    """
    now = _now()
    window = int(now // window_seconds)
    ends_at = (window + 1) * window_seconds
    retry_after = max(1, math.ceil(ends_at - now))
    digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    key = f"tagbase:rl:{name}:{digest}:{window}"
    try:
        # The entry outlives its window by a second so that it never expires between add and
        # incr; a later window has another key.
        cache.add(key, 0, timeout=retry_after + 1)
        try:
            hits = cache.incr(key)
        except ValueError:  # evicted between add and incr (LocMemCache under memory pressure)
            cache.add(key, 1, timeout=retry_after + 1)
            hits = 1
    except Exception:
        logger.exception("Rate limit %r not applied: the cache failed", name)
        return Count(0, retry_after)
    return Count(int(hits), retry_after)


def give_back(name: str, subject: str, window_seconds: int) -> None:
    """Take back one hit of the current window (a login attempt that succeeded)."""
    window = int(_now() // window_seconds)
    digest = hashlib.sha256(subject.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    try:
        cache.decr(f"tagbase:rl:{name}:{digest}:{window}")
    except ValueError:  # the window ended in between: nothing to give back
        pass
    except Exception:
        logger.exception("Rate limit %r: the cache failed", name)


def client_ip(request: HttpRequest, trusted_proxies: int) -> str:
    """The address of the client, as seen through ``trusted_proxies`` reverse proxies.

    With no proxy it is ``REMOTE_ADDR``. Each proxy appends the address it received the
    request from to ``X-Forwarded-For``, so behind N proxies the client is the N-th entry
    from the right; entries further left were written by the client and are not trusted.
    """
    remote = str(request.META.get("REMOTE_ADDR") or "")
    if trusted_proxies <= 0:
        return remote
    forwarded = [
        part.strip()
        for part in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",")
        if part.strip()
    ]
    if not forwarded:
        return remote
    return forwarded[-min(trusted_proxies, len(forwarded))]
