"""``tagbase serve``: everything needed to try Tagbase on one machine, in one command.

Migrates, loads demo data and creates a first login on the first start, then runs the web
server in this process and a background worker as a child process. Ctrl-C (SIGINT) or SIGTERM
stops both: the server stops taking requests and the worker gets SIGTERM, finishes its current
task and exits (killed after ``WORKER_GRACE`` seconds; its job lease lets another worker resume).

``--production`` runs gunicorn with N web processes and M ``tagbase worker`` processes instead of
the development server and one worker (no demo data; static files collected first).

The worker runs in its own session so that a Ctrl-C in the terminal reaches only this process,
which then stops the worker exactly once; on Linux the worker also gets SIGTERM if this process
dies without cleaning up (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import socket
import subprocess  # nosec B404  # runs only our own gunicorn and `tagbase worker`
import sys
import threading
from pathlib import Path
from types import FrameType

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper
from django.db import connection

from tagbase.accounts.management.logins import create_login, generate_password
from tagbase.accounts.models import Role, User
from tagbase.audiences.models import Audience
from tagbase.customers.models import Customer
from tagbase.web.management.commands.worker import backend_problem

WORKER_GRACE = 15  # seconds the worker has to finish its current task
FIRST_LOGIN_FILE = "first-login.txt"
ADMIN = "admin"


class Command(BaseCommand):
    help = (
        "Run Tagbase: migrate, load demo data and create a login on the first start, then serve "
        "the web UI and run a background worker until Ctrl-C."
    )
    requires_system_checks = []  # runserver runs them

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to listen on.")
        parser.add_argument("--port", type=int, default=8000, help="Port (default: 8000).")
        parser.add_argument("--no-worker", action="store_true", help="Do not start a worker.")
        parser.add_argument(
            "--no-demo", action="store_true", help="Do not load demo data on the first start."
        )
        parser.add_argument(
            "--production",
            action="store_true",
            help="Serve with gunicorn (--web processes) and run --workers workers; no demo data.",
        )
        parser.add_argument(
            "--web",
            type=_count,
            default=None,
            help=f"With --production: gunicorn web processes (default: {default_web()}).",
        )
        parser.add_argument(
            "--workers",
            type=_count,
            default=None,
            help="With --production: `tagbase worker` processes (default: 2).",
        )

    def handle(self, *args: object, **options: object) -> None:
        host, port = str(options["host"]), int(options["port"])  # type: ignore[call-overload]
        if not options["production"] and (options["web"] or options["workers"]):
            raise CommandError("--web and --workers go with --production.")
        _check_port_free(host, port)
        if options["production"]:
            self._production(host, port, options)
            return
        call_command("migrate", verbosity=0, interactive=False)
        if not options["no_demo"] and is_first_start():
            self._load_demo()
        login = ensure_first_login()
        self.stdout.write(f"Tagbase is running at http://{host}:{port}/  — log in as {login}")
        worker = None if options["no_worker"] else self._start_worker()
        # Both signals mean "stop": installed explicitly because a process started in the
        # background by a non-interactive shell inherits SIGINT as ignored.
        previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            call_command("runserver", f"{host}:{port}", use_reloader=False)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if worker is not None:
                worker.stop()

    def _production(self, host: str, port: int, options: dict[str, object]) -> None:
        if settings.DEBUG:
            raise CommandError("--production refuses DEBUG=true: set DEBUG=false.")
        web = int(options["web"] or default_web())  # type: ignore[call-overload]
        worker_count = 0 if options["no_worker"] else int(options["workers"] or 2)  # type: ignore[call-overload]
        if connection.vendor == "sqlite" and web + worker_count > 2:
            self.stdout.write(
                "Warning: SQLite serves one writer at a time; with several processes use "
                "PostgreSQL (DATABASE_URL)."
            )
        call_command("migrate", verbosity=0, interactive=False)
        call_command("collectstatic", verbosity=0, interactive=False)
        login = ensure_first_login()
        problem = backend_problem() if worker_count else None
        if problem:
            self.stdout.write(f"No worker started: {problem}")
            worker_count = 0
        self.stdout.write(
            f"Tagbase (production: {web} web processes, {worker_count} workers) is running at "
            f"http://{host}:{port}/  — log in as {login}"
        )
        stop = threading.Event()
        previous = {
            sig: signal.signal(sig, lambda *_: stop.set())
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        # The command is ours; --host and --port are checked above (a bind succeeded).
        web_server = subprocess.Popen(  # noqa: S603  # nosec B603  # fixed argv, no shell
            [
                sys.executable, "-m", "gunicorn", "tagbase.wsgi:application",
                "--bind", f"{host}:{port}", "--workers", str(web),
                "--graceful-timeout", str(WORKER_GRACE), "--access-logfile", "-",
            ],
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )  # fmt: skip
        workers = [WorkerProcess(self.stderr) for _ in range(worker_count)]
        try:
            while web_server.poll() is None and not stop.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if web_server.poll() is None:
                web_server.send_signal(signal.SIGTERM)  # gunicorn: graceful stop
            for worker in workers:
                worker.stop()
            try:
                code = web_server.wait(timeout=WORKER_GRACE + 5)
            except subprocess.TimeoutExpired:
                web_server.kill()
                code = web_server.wait()
        if not stop.is_set():
            raise CommandError(f"gunicorn stopped by itself (exit code {code}).")

    def _load_demo(self) -> None:
        self.stdout.write("First start: loading demo data (tagbase demo)…")
        try:
            call_command("demo", stdout=self.stdout)
        except KeyboardInterrupt:
            raise CommandError(
                "Interrupted while loading the demo data; `tagbase demo --reset` loads it again."
            ) from None

    def _start_worker(self) -> WorkerProcess | None:
        problem = backend_problem()
        if problem:
            self.stdout.write(f"No worker started: {problem}")
            return None
        return WorkerProcess(self.stderr)


def default_web() -> int:
    """gunicorn's usual advice: two web processes per core, plus one."""
    return 2 * (os.cpu_count() or 1) + 1


def _count(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError(f"must be between 1 and 64, got {value}")
    return number


def _interrupt(signum: int, frame: FrameType | None) -> None:
    # runserver turns KeyboardInterrupt into a clean exit.
    raise KeyboardInterrupt


def _check_port_free(host: str, port: int) -> None:
    """Refuse early: runserver ends the process with os._exit when it cannot bind, which would
    skip stopping the worker."""
    if not 0 < port < 65536:
        raise CommandError(f"--port {port}: expected 1 to 65535.")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise CommandError(
                f"Cannot listen on {host}:{port} ({exc.strerror}); choose another --port."
            ) from None


def is_first_start() -> bool:
    """No customers and no audiences: nothing to lose by loading the demo."""
    return not Customer.objects.exists() and not Audience.objects.exists()


def first_login_path() -> Path:
    return Path(settings.DATA_DIR) / FIRST_LOGIN_FILE


def ensure_first_login() -> str:
    """Create the ``admin`` login when there is no user at all; return how to log in.

    The generated password is shown once and kept in ``<data dir>/first-login.txt`` (mode
    600) for later starts; once the admin has changed it, the stale file is removed.
    """
    path = first_login_path()
    if not User.objects.exists():
        password = generate_password()
        create_login(ADMIN, password, role=Role.ADMIN)
        _write_private(path, f"username: {ADMIN}\npassword: {password}\n")
        return f"{ADMIN} / {password}"
    admin = User.objects.filter(username=ADMIN).first()
    if path.exists() and admin is not None:
        if admin.check_password(_password_in(path)):
            return f"{ADMIN} / see {_shown(path)}"
        path.unlink()  # the admin changed the password: the file would only mislead
    return "your user (`tagbase createuser NAME --role admin` adds one)"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode through O_CREAT
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _password_in(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("password: "):
            return line.removeprefix("password: ")
    return ""


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class WorkerProcess:
    """``tagbase worker`` as a child process in its own session, watched by a thread that
    reports if it stops by itself."""

    def __init__(self, log: OutputWrapper) -> None:
        self.log = log
        self.stopping = threading.Event()
        self.popen = subprocess.Popen(  # nosec B603  # fixed argv, no shell
            [sys.executable, "-m", "tagbase", "worker"],
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        threading.Thread(target=self._watch, daemon=True).start()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def _watch(self) -> None:
        code = self.popen.wait()
        if not self.stopping.is_set():
            self.log.write(
                f"The worker stopped (exit code {code}); background tasks wait until you "
                "restart `tagbase serve` or run `tagbase worker`."
            )

    def stop(self) -> int:
        """SIGTERM the worker and wait for it to finish its task; kill it after the grace
        time. Returns its exit code."""
        self.stopping.set()
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                return self.popen.wait(timeout=WORKER_GRACE)
            except subprocess.TimeoutExpired:
                self.log.write(f"The worker did not stop within {WORKER_GRACE} s; killing it.")
                self.popen.kill()
        return self.popen.wait()


def _die_with_parent() -> None:
    # prctl(PR_SET_PDEATHSIG, SIGTERM): the kernel signals the worker if serve dies hard.
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)
