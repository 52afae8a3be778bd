"""The UI shell: login, navigation, user menu, messages, error pages, static assets, and the
rules that keep pages CSP-friendly (no inline scripts or handlers)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from tagbase.accounts.models import Role
from tagbase.testing import PASSWORD, make_user

WEB = Path(__file__).resolve().parents[1]
TAGBASE = WEB.parent
VENDOR = WEB / "static" / "vendor"


def templates() -> list[Path]:
    return sorted(TAGBASE.glob("*/templates/**/*.html"))


# --- Login ------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_login_page_is_a_card_with_labelled_fields():
    html = Client().get(reverse("login")).content.decode()
    assert 'class="login-card"' in html
    assert '<label for="id_username">User name</label>' in html
    assert '<label for="id_password">Password</label>' in html
    assert 'autocomplete="current-password"' in html
    assert 'id="sidebar"' not in html  # no navigation before logging in


@pytest.mark.django_db
def test_a_wrong_password_shows_an_error_and_a_right_one_opens_the_audiences():
    user = make_user(Role.ANALYST)
    client = Client()
    wrong = client.post(reverse("login"), {"username": user.username, "password": "nope"})
    assert wrong.status_code == 200
    assert 'role="alert"' in wrong.content.decode()
    right = client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert right["Location"] == reverse("audiences:audience_list")


@pytest.mark.django_db
def test_the_start_page_leads_to_the_audiences_and_logout_is_a_post():
    client = Client()
    client.force_login(make_user(Role.MARKETER))
    assert Client().get(reverse("web:home")).status_code == 302
    response = client.get(reverse("web:home"), follow=True)
    html = response.content.decode()
    assert response.redirect_chain[-1][0] == reverse("audiences:audience_list")
    assert re.search(r'<form method="post" action="/logout/">', html)
    assert client.post(reverse("logout"))["Location"] == reverse("login")
    assert client.get(reverse("audiences:audience_list")).status_code == 302


# --- The shell --------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "label"), [(Role.MARKETER, "Marketer"), (Role.ANALYST, "Analyst")]
)
def test_every_page_has_navigation_breadcrumbs_user_menu_and_footer(role, label):
    client = Client()
    user = make_user(role)
    client.force_login(user)
    html = client.get(reverse("customers:customer_list")).content.decode()
    assert 'aria-label="Main"' in html and "All customers" in html and "Target audiences" in html
    assert re.search(r'href="/customers/"\s+aria-current="page"', html)
    assert 'aria-label="Breadcrumb"' in html
    assert user.username in html and f'class="role-badge">{label}' in html
    assert 'class="site-footer"' in html
    if role == Role.ANALYST:
        assert "read only" in html


@pytest.mark.django_db
def test_messages_are_shown_as_toasts_and_errors_stay_until_dismissed():
    from tagbase.audiences import services
    from tagbase.audiences.models import Operation
    from tagbase.testing import make_customers, system_actor

    client = Client()
    client.force_login(make_user(Role.MARKETER))
    created = client.post(reverse("audiences:audience_create"), {"name": "Toast"}, follow=True)
    html = created.content.decode()
    assert re.search(r'class="toast toast-success" data-autodismiss="6000"', html)
    assert "Audience “Toast” created." in html
    audience = services.get_or_create_audience("Toast", actor=system_actor())[0]
    services.add_customers_to_audience(audience, make_customers(1), actor=system_actor(), kind="ui")
    undo = reverse("audiences:operation_undo", args=[Operation.objects.get().pk])
    client.post(undo)
    html = client.post(undo, follow=True).content.decode()
    assert re.search(r'class="toast toast-error" role="alert"', html)
    assert "already been undone" in html


@pytest.mark.django_db
def test_the_403_page_explains_the_role():
    client = Client()
    client.force_login(make_user(Role.ANALYST))
    response = client.get(reverse("audiences:audience_create"))
    assert response.status_code == 403
    assert "Your role (Analyst) can read data" in response.content.decode()


@pytest.mark.django_db
def test_the_404_page_keeps_the_shell():
    client = Client()
    client.force_login(make_user(Role.ANALYST))
    response = client.get("/customers/0/")
    assert response.status_code == 404
    assert "This page does not exist" in response.content.decode()


# --- Static assets and CSP-friendliness ----------------------------------------------------


def vendor_script_pins() -> tuple:
    """PACKAGES from scripts/vendor_static.py (a script, not a module of the package)."""
    path = TAGBASE.parent / "scripts" / "vendor_static.py"
    spec = importlib.util.spec_from_file_location("vendor_static", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while building classes
    spec.loader.exec_module(module)
    return module.PACKAGES


def test_vendored_libraries_are_the_pinned_versions_with_their_licences():
    pins = vendor_script_pins()
    assert {pkg.lib for pkg in pins} == {p.name for p in VENDOR.iterdir() if p.is_dir()}
    for pkg in pins:
        folder = VENDOR / pkg.lib
        assert (folder / Path(pkg.licence).name).stat().st_size > 0
        for name in pkg.files:
            assert (folder / Path(name).name).stat().st_size > 1000
        assert (folder / "VERSION").read_text().startswith(f"{pkg.name}@{pkg.version}\n")


def test_the_base_page_loads_only_local_assets():
    base = (WEB / "templates" / "base.html").read_text()
    assert "vendor/htmx/htmx.min.js" in base and "vendor/pico/pico.min.css" in base
    assert not re.search(r'(src|href)="(https?:)?//', base)


@pytest.mark.parametrize("path", templates(), ids=lambda p: str(p.relative_to(TAGBASE)))
def test_no_template_has_inline_scripts_handlers_or_styles(path):
    html = path.read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    assert not re.search(r"\sstyle\s*=", html), "inline style attribute"
    assert "hx-on" not in html and "javascript:" not in html


def test_htmx_is_configured_without_eval():
    base = (WEB / "templates" / "base.html").read_text()
    assert '"allowEval": false' in base
