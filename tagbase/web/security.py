"""Security headers on every response, and Tagbase's own production checks.

Django's ``SecurityMiddleware`` already sends ``X-Content-Type-Options: nosniff``,
``Referrer-Policy`` and ``Cross-Origin-Opener-Policy`` (and HSTS over HTTPS). This middleware
adds what Django 5.2 does not: a Content-Security-Policy, a Permissions-Policy and a
Cross-Origin-Resource-Policy, and ``X-Frame-Options: DENY`` on the responses that never reach
Django's clickjacking middleware (static files, which WhiteNoise answers earlier). It sits
right after ``SecurityMiddleware``, so pages, API answers, static files and error pages all get
the same headers (docs/howto/run-in-production.md#security).

The policy allows scripts, styles, images, fonts and requests from this site only, and no
inline script, inline style, ``eval`` or framing. The UI is built for it: every script is a
static file, templates carry no ``<script>`` body, ``on…=`` handler or ``style=`` attribute
(data for scripts goes through ``json_script``, which the browser does not run), and htmx is
configured without eval and without its injected ``<style>`` (base.html).
``tests/browser/test_csp.py`` loads the main pages in Chromium and fails on any violation.
``data:`` images are allowed for the small SVGs Pico's stylesheet draws controls with.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.http import HttpRequest, HttpResponse

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# Browser features the back office never uses, switched off for it and anything it embeds.
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer",
        "camera",
        "geolocation",
        "gyroscope",
        "magnetometer",
        "microphone",
        "payment",
        "usb",
    )
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Permissions-Policy": PERMISSIONS_POLICY,
    "Cross-Origin-Resource-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


class SecurityHeadersMiddleware:
    """Adds ``HEADERS`` to every response that does not set them itself."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        return response


# --- `tagbase check --deploy` -----------------------------------------------------------------


@register(Tags.security, deploy=True)
def check_secret_key_is_set(**kwargs: object) -> list[CheckMessage]:
    """A production site needs SECRET_KEY from the environment, the same on every machine."""
    if not getattr(settings, "TAGBASE_SECRET_KEY_GENERATED", False):
        return []
    return [
        Error(
            "SECRET_KEY is not set: each machine generates its own key into TAGBASE_DATA_DIR, "
            "so a session is valid only on the machine that created it.",
            hint="Set SECRET_KEY in the environment of every process "
            '(python3 -c "import secrets; print(secrets.token_urlsafe(50))").',
            id="tagbase.E001",
        )
    ]


@register(Tags.security, deploy=True)
def check_rate_limits_are_shared(**kwargs: object) -> list[CheckMessage]:
    """Rate limits counted in a per-process cache are N times looser with N processes."""
    limits_on = settings.TAGBASE_API_RATE_LIMIT or settings.TAGBASE_LOGIN_RATE_LIMIT
    backend = settings.CACHES["default"]["BACKEND"]
    if not limits_on or not backend.endswith("LocMemCache"):
        return []
    return [
        Warning(
            "Rate limits are counted per process (TAGBASE_CACHE=locmem): with several web "
            "processes each one allows the whole limit.",
            hint="Set TAGBASE_CACHE=database (`tagbase migrate` makes its table) or "
            "TAGBASE_CACHE=redis://host:6379/0.",
            id="tagbase.W001",
        )
    ]
