"""Log-in: the UI's page and the Django admin's form, with the log-in rate limit.

Django's ``LoginView`` and ``AuthenticationForm`` with one addition: each attempt counts against
``TAGBASE_LOGIN_RATE_LIMIT`` per user name and client address (``accounts.ratelimit``); over the
limit the password is not checked, the form says when to try again, and the page answers 429
with ``Retry-After``. Mounted by ``tagbase/urls.py``.
"""

from __future__ import annotations

import math
from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.views.decorators.debug import sensitive_variables

from tagbase.accounts import ratelimit


class RateLimitedLoginForm(AuthenticationForm):
    """Counts each attempt per user name and client address (``accounts.ratelimit``).

    Over the limit the password is not checked and the form has one error, code
    ``rate_limited``; ``retry_after`` then holds the seconds until attempts are counted anew
    (the view sends it as ``Retry-After``). A successful attempt does not count.
    """

    retry_after: int | None = None

    @sensitive_variables("password")
    def clean(self) -> dict[str, Any]:
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            return super().clean()  # the fields' own errors
        request = self.request
        over = ratelimit.count_login_attempt(request, username)
        if over is not None:
            self.retry_after = over.retry_after
            minutes = math.ceil(over.retry_after / 60)
            raise ValidationError(
                "Too many failed log-ins for this user name from your address. "
                "Try again in %(minutes)d minute(s).",
                code="rate_limited",
                params={"minutes": minutes},
            )
        cleaned = super().clean()  # raises on a wrong password
        ratelimit.forget_login_attempt(request, username)
        return cleaned


class LoginForm(RateLimitedLoginForm):
    """The UI's log-in form (``/login/``)."""


class AdminLoginForm(RateLimitedLoginForm, AdminAuthenticationForm):
    """The Django admin's log-in form (``/admin/login/``): the same limit, the same counters."""


class LoginView(auth_views.LoginView):
    """``/login/``. Over the log-in rate limit the page shows the form's error and answers
    429 with ``Retry-After``, so that scripts see the refusal too."""

    authentication_form = LoginForm

    def form_invalid(self, form: Any) -> HttpResponse:
        response = super().form_invalid(form)
        retry_after = getattr(form, "retry_after", None)
        if retry_after is not None:
            response.status_code = 429
            response["Retry-After"] = str(retry_after)
        return response
