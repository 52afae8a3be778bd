"""``tagbase createuser USERNAME [--role ROLE] [--password-stdin]``: add a login."""

from __future__ import annotations

import getpass
import sys

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tagbase.accounts.management.logins import LoginError, create_login
from tagbase.accounts.models import Role


class Command(BaseCommand):
    help = (
        "Create a user who logs in to the web UI. The password is read from stdin with "
        "--password-stdin, otherwise asked twice on the terminal."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--role",
            choices=Role.values,
            default=Role.MARKETER,
            help="admin: everything incl. users and tokens; marketer: audiences, imports, "
            "segments, campaigns; analyst: read only (default: %(default)s)",
        )
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="Read the password from the first line of stdin (for scripts).",
        )

    def handle(self, *args: object, **options: object) -> None:
        username = str(options["username"])
        password = _read_password(bool(options["password_stdin"]))
        try:
            user = create_login(username, password, role=str(options["role"]))
        except LoginError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"Created user {user.username!r} with role {user.role}.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        password = line.rstrip("\r\n")
        if not password:
            raise CommandError("--password-stdin: stdin gave an empty password.")
        return password
    if not sys.stdin.isatty():
        raise CommandError(
            "stdin is not a terminal: pass --password-stdin and pipe the password in."
        )
    first = getpass.getpass("Password: ")
    if first != getpass.getpass("Password (again): "):
        raise CommandError("The two passwords differ; nothing was created.")
    return first
