"""``tagbase createuser``: roles, where the password comes from, and refusals."""

from __future__ import annotations

import io
import sys

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tagbase.accounts.models import User
from tagbase.testing import make_user

pytestmark = pytest.mark.django_db
GOOD = "plum-orbit-cascade-71"


class FakeStdin(io.StringIO):
    def __init__(self, text: str = "", tty: bool = False) -> None:
        super().__init__(text)
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def run(*args: str, stdin: str = "", tty: bool = False, monkeypatch) -> str:
    monkeypatch.setattr(sys, "stdin", FakeStdin(stdin, tty))
    out = io.StringIO()
    call_command("createuser", *args, stdout=out)
    return out.getvalue()


def test_createuser_reads_the_password_from_stdin_and_sets_the_role(monkeypatch):
    out = run("maria", "--role", "analyst", "--password-stdin", stdin=GOOD + "\n",
              monkeypatch=monkeypatch)  # fmt: skip
    assert out.strip() == "Created user 'maria' with role analyst."
    user = User.objects.get(username="maria")
    assert user.role == "analyst" and user.check_password(GOOD)
    assert not user.can_write and not user.is_staff


def test_createuser_defaults_to_marketer(monkeypatch):
    run("ivan", "--password-stdin", stdin=GOOD, monkeypatch=monkeypatch)
    user = User.objects.get(username="ivan")
    assert user.role == "marketer" and user.can_write and not user.is_admin


def test_an_admin_is_also_staff_and_superuser_so_it_reaches_the_admin_site(monkeypatch):
    run("boss", "--role", "admin", "--password-stdin", stdin=GOOD, monkeypatch=monkeypatch)
    user = User.objects.get(username="boss")
    assert user.is_admin and user.is_staff and user.is_superuser


def test_createuser_asks_twice_on_a_terminal(monkeypatch):
    answers = iter([GOOD, GOOD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    run("olga", tty=True, monkeypatch=monkeypatch)
    assert User.objects.get(username="olga").check_password(GOOD)


def test_createuser_refuses_two_different_passwords(monkeypatch):
    answers = iter([GOOD, GOOD + "x"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    with pytest.raises(CommandError, match=r"The two passwords differ; nothing was created\."):
        run("olga", tty=True, monkeypatch=monkeypatch)
    assert not User.objects.filter(username="olga").exists()


def test_createuser_refuses_a_non_terminal_without_password_stdin(monkeypatch):
    with pytest.raises(CommandError, match="stdin is not a terminal: pass --password-stdin"):
        run("olga", monkeypatch=monkeypatch)


NOT_ACCEPTED = "The password is not accepted: This password is too"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["x", "--password-stdin"], "\n", "--password-stdin: stdin gave an empty password."),
        (["x", "--password-stdin"], "short\n", f"{NOT_ACCEPTED} short"),
        (["x", "--password-stdin"], "password123\n", f"{NOT_ACCEPTED} common"),
        (["bad name!", "--password-stdin"], GOOD, "Invalid username: Enter a valid username"),
        (["x", "--role", "owner", "--password-stdin"], GOOD, "invalid choice: 'owner'"),
    ],
)
def test_createuser_explains_what_is_wrong(monkeypatch, args, stdin, message):
    with pytest.raises(CommandError) as caught:
        run(*args, stdin=stdin, monkeypatch=monkeypatch)
    assert message in str(caught.value)
    assert not User.objects.exists()


def test_createuser_refuses_an_existing_username_in_any_case(monkeypatch):
    make_user(username="Maria")
    with pytest.raises(CommandError, match=r"A user named 'maria' already exists\."):
        run("maria", "--password-stdin", stdin=GOOD, monkeypatch=monkeypatch)
