"""Every response carries the security headers: pages, API answers, static files and error
pages alike (``tagbase.web.security``; the CSP itself is exercised in a real browser by
tests/browser/test_csp.py)."""

from __future__ import annotations

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.urls import path, reverse

from tagbase.accounts.models import Role
from tagbase.testing import make_user
from tagbase.urls import urlpatterns as tagbase_urls
from tagbase.web.security import CONTENT_SECURITY_POLICY

EXPECTED = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}


def assert_security_headers(response: HttpResponse) -> None:
    for name, value in EXPECTED.items():
        assert response.get(name) == value, (name, response.get(name))
    policy = response["Permissions-Policy"]
    assert "camera=()" in policy and "geolocation=()" in policy and "microphone=()" in policy


def test_the_policy_allows_only_this_site_and_no_inline_code_or_framing():
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["object-src"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


@pytest.mark.django_db
def test_a_page_has_the_security_headers():
    client = Client()
    client.force_login(make_user(Role.MARKETER))
    response = client.get(reverse("audiences:audience_list"))
    assert response.status_code == 200
    assert_security_headers(response)


@pytest.mark.django_db
def test_the_login_page_has_the_security_headers():
    assert_security_headers(Client().get(reverse("login")))


@pytest.mark.django_db
def test_api_answers_have_the_security_headers():
    refused = Client().get("/api/v1/audiences")
    assert refused.status_code == 401
    assert_security_headers(refused)
    client = Client()
    client.force_login(make_user(Role.ANALYST))
    listed = client.get("/api/v1/audiences")
    assert listed.status_code == 200
    assert_security_headers(listed)


@pytest.mark.django_db
def test_the_api_docs_load_swagger_from_this_site_not_a_cdn():
    client = Client()
    client.force_login(make_user(Role.ANALYST))
    response = client.get("/api/v1/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/ninja/swagger-ui-bundle.js" in html
    assert "cdn" not in html.lower()
    assert_security_headers(response)


def test_a_static_file_has_the_security_headers():
    # Served by WhiteNoise, which answers before Django's clickjacking middleware runs.
    response = Client().get("/static/tagbase/app.css")
    assert response.status_code == 200
    assert_security_headers(response)


@pytest.mark.django_db
def test_the_404_page_has_the_security_headers():
    client = Client()
    client.force_login(make_user(Role.MARKETER))
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert_security_headers(response)


def _broken_view(request: HttpRequest) -> HttpResponse:
    raise RuntimeError("a bug")


urlpatterns = [path("broken/", _broken_view), *tagbase_urls]


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_the_500_page_has_the_security_headers():
    response = Client(raise_request_exception=False).get("/broken/")
    assert response.status_code == 500
    assert_security_headers(response)


@pytest.mark.django_db
def test_a_view_that_sets_its_own_header_keeps_it(settings):
    # setdefault: a response that needs another policy (none today) could say so itself.
    from tagbase.web.security import SecurityHeadersMiddleware

    def view(request: HttpRequest) -> HttpResponse:
        response = HttpResponse("x")
        response["X-Frame-Options"] = "SAMEORIGIN"
        return response

    response = SecurityHeadersMiddleware(view)(HttpRequest())
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert response["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
