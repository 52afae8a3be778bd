"""The log-in rate limit: TAGBASE_LOGIN_RATE_LIMIT failed attempts per user name and client
address per window, then the form refuses (429, Retry-After) without checking the password.
Tiny limits and a fixed clock here."""

from __future__ import annotations

import pytest
from django.contrib.auth.signals import user_login_failed
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from tagbase.accounts.models import Role
from tagbase.lib import ratelimit
from tagbase.testing import PASSWORD, make_user

pytestmark = pytest.mark.django_db

WINDOW_START = 1_800_000_000.0  # a multiple of 900 s: the tests know when the window ends


@pytest.fixture(autouse=True)
def _tiny_limit(settings, monkeypatch):
    settings.TAGBASE_LOGIN_RATE_LIMIT = 3
    settings.TAGBASE_LOGIN_RATE_WINDOW_SECONDS = 900
    settings.TAGBASE_TRUSTED_PROXIES = 0
    cache.clear()
    clock = {"now": WINDOW_START + 300}
    monkeypatch.setattr(ratelimit, "_now", lambda: clock["now"])
    yield clock
    cache.clear()


def log_in(username: str, password: str, ip: str = "10.0.0.1", **extra: str):
    return Client(REMOTE_ADDR=ip, **extra).post(
        reverse("login"), {"username": username, "password": password}
    )


def fail(username: str, times: int, ip: str = "10.0.0.1", **extra: str) -> None:
    for _ in range(times):
        response = log_in(username, "wrong", ip, **extra)
        assert response.status_code == 200, response.status_code


def assert_refused(response) -> None:
    assert response.status_code == 429
    assert response["Retry-After"] == "600"  # 300 s into a 900 s window
    html = response.content.decode()
    assert "Too many failed log-ins for this user name from your address." in html
    assert "Try again in 10 minute(s)." in html
    assert "_auth_user_id" not in response.client.session


def test_after_the_limit_even_the_right_password_is_refused_without_being_checked():
    user = make_user(Role.MARKETER)
    fail(user.username, 3)
    checked = []
    user_login_failed.connect(checked.append, dispatch_uid="test-rl")
    try:
        assert_refused(log_in(user.username, PASSWORD))
    finally:
        user_login_failed.disconnect(dispatch_uid="test-rl")
    assert checked == []  # authenticate() was not called: no guess is tried over the limit


def test_below_the_limit_the_right_password_still_works():
    user = make_user(Role.MARKETER)
    fail(user.username, 2)
    response = log_in(user.username, PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == reverse("audiences:audience_list")


def test_successful_log_ins_do_not_count():
    user = make_user(Role.MARKETER)
    for _ in range(5):
        assert log_in(user.username, PASSWORD).status_code == 302
    fail(user.username, 2)
    assert log_in(user.username, PASSWORD).status_code == 302


def test_the_count_is_per_user_name_and_address():
    user, other = make_user(Role.MARKETER), make_user(Role.MARKETER)
    fail(user.username, 3, ip="10.0.0.1")
    assert_refused(log_in(user.username, PASSWORD, ip="10.0.0.1"))
    assert_refused(log_in(user.username.upper(), PASSWORD, ip="10.0.0.1"))  # case-folded
    assert log_in(user.username, PASSWORD, ip="10.0.0.2").status_code == 302
    assert log_in(other.username, PASSWORD, ip="10.0.0.1").status_code == 302


def test_the_next_window_lets_the_user_in_again(_tiny_limit):
    user = make_user(Role.MARKETER)
    fail(user.username, 3)
    assert_refused(log_in(user.username, PASSWORD))
    _tiny_limit["now"] = WINDOW_START + 900
    assert log_in(user.username, PASSWORD).status_code == 302


def test_behind_a_trusted_proxy_the_forwarded_address_counts(settings):
    settings.TAGBASE_TRUSTED_PROXIES = 1
    user = make_user(Role.MARKETER)
    # The proxy (10.0.0.9) appends the client's address; what the client wrote before it
    # (1.1.1.1) is not trusted, so changing it does not give a new count.
    fail(user.username, 3, ip="10.0.0.9", HTTP_X_FORWARDED_FOR="1.1.1.1, 203.0.113.5")
    spoofed = {"HTTP_X_FORWARDED_FOR": "2.2.2.2, 203.0.113.5"}
    assert_refused(log_in(user.username, PASSWORD, ip="10.0.0.9", **spoofed))
    another = {"HTTP_X_FORWARDED_FOR": "203.0.113.6"}
    assert log_in(user.username, PASSWORD, ip="10.0.0.9", **another).status_code == 302


def test_without_trusted_proxies_x_forwarded_for_is_ignored():
    user = make_user(Role.MARKETER)
    for n in range(3):
        forwarded = {"HTTP_X_FORWARDED_FOR": f"203.0.113.{n}"}
        assert log_in(user.username, "wrong", **forwarded).status_code == 200
    assert_refused(log_in(user.username, PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.99"))


def test_the_admin_log_in_shares_the_limit():
    admin = make_user(Role.ADMIN, is_staff=True, is_superuser=True)
    fail(admin.username, 3)
    response = Client(REMOTE_ADDR="10.0.0.1").post(
        reverse("admin:login"), {"username": admin.username, "password": PASSWORD}
    )
    assert response.status_code == 200  # the admin's own view: the form error, no redirect
    assert "Too many failed log-ins" in response.content.decode()
    assert "_auth_user_id" not in response.client.session


def test_zero_turns_the_limit_off(settings):
    settings.TAGBASE_LOGIN_RATE_LIMIT = 0
    user = make_user(Role.MARKETER)
    fail(user.username, 10)
    assert log_in(user.username, PASSWORD).status_code == 302
