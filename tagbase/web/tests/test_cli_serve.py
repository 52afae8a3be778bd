"""``tagbase serve``: first start (demo data, first login) and stopping web + worker cleanly.

The stop tests run the real command in a child process on a free port, wait for /healthz, send
the signal and check that both the server and its worker are gone.
"""

from __future__ import annotations

import io
import signal
import socket
import stat
import sys
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from tagbase.accounts.models import User
from tagbase.audiences.models import Audience
from tagbase.customers.models import Customer
from tagbase.testing import make_customer, make_user
from tagbase.web.management.commands import serve
from tagbase.web.tests import cli_processes as procs

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="inspects /proc")


@pytest.fixture
def data_dir(tmp_path, settings):
    settings.DATA_DIR = tmp_path
    return tmp_path


# --- first start ----------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_first_start_creates_an_admin_and_keeps_the_password_in_a_private_file(data_dir):
    shown = serve.ensure_first_login()
    assert shown.startswith("admin / ")
    password = shown.removeprefix("admin / ")
    admin = User.objects.get()
    assert (admin.username, admin.role, admin.is_superuser) == ("admin", "admin", True)
    assert admin.check_password(password)
    path = data_dir / "first-login.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"password: {password}" in path.read_text()


@pytest.mark.django_db
def test_later_starts_point_to_the_file_instead_of_printing_the_password(data_dir):
    serve.ensure_first_login()
    assert serve.ensure_first_login() == f"admin / see {data_dir / 'first-login.txt'}"
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_the_file_goes_once_the_admin_has_changed_the_password(data_dir):
    serve.ensure_first_login()
    admin = User.objects.get()
    admin.set_password("a-new-secret-of-mine-9")
    admin.save()
    assert serve.ensure_first_login().startswith("your user")
    assert not (data_dir / "first-login.txt").exists()


@pytest.mark.django_db
def test_no_login_is_created_when_a_user_exists(data_dir):
    make_user(username="maria")
    assert serve.ensure_first_login().startswith("your user")
    assert list(User.objects.values_list("username", flat=True)) == ["maria"]
    assert not (data_dir / "first-login.txt").exists()


@pytest.mark.django_db
def test_it_is_a_first_start_only_without_customers_and_audiences():
    assert serve.is_first_start()
    make_customer()
    assert not serve.is_first_start()


@pytest.mark.django_db
def test_serve_loads_the_demo_on_the_first_start_only(data_dir, monkeypatch):
    calls: list[tuple[str, ...]] = []
    real_call_command = serve.call_command

    def fake_call_command(name: str, *args, **kwargs):
        calls.append((name, *args))
        if name == "demo":  # keep the test quick: the default is 50,000 customers
            return real_call_command("demo", "--customers", "50", **kwargs)
        # migrate and runserver for real are exercised by the subprocess tests below (migrate
        # cannot run inside this test's transaction on SQLite).
        return None

    monkeypatch.setattr(serve, "call_command", fake_call_command)
    out = io.StringIO()
    port = str(procs.free_port())
    call_command("serve", "--no-worker", "--port", port, stdout=out)
    assert [c[0] for c in calls] == ["migrate", "demo", "runserver"]
    assert calls[-1] == ("runserver", f"127.0.0.1:{port}")
    assert Customer.objects.count() == 50 and Audience.objects.exists()
    assert f"Tagbase is running at http://127.0.0.1:{port}/  — log in as admin / " in (
        out.getvalue()
    )
    calls.clear()
    call_command("serve", "--no-worker", "--port", port, stdout=io.StringIO())
    assert [c[0] for c in calls] == ["migrate", "runserver"]
    assert Customer.objects.count() == 50


@pytest.mark.django_db
def test_ctrl_c_while_the_demo_loads_is_a_clear_message_not_a_traceback(data_dir, monkeypatch):
    def fake_call_command(name: str, *args, **kwargs):
        if name == "demo":
            raise KeyboardInterrupt
        if name == "runserver":
            raise AssertionError("the server must not start")

    monkeypatch.setattr(serve, "call_command", fake_call_command)
    with pytest.raises(CommandError, match=r"Interrupted while loading the demo data; `tagbase"):
        call_command("serve", "--port", str(procs.free_port()), stdout=io.StringIO())


def test_serve_refuses_a_port_in_use():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(CommandError, match=rf"Cannot listen on 127.0.0.1:{port} \("):
            call_command("serve", "--port", str(port))


def test_serve_refuses_a_port_out_of_range():
    with pytest.raises(CommandError, match=r"--port 70000: expected 1 to 65535\."):
        call_command("serve", "--port", "70000")


# --- stopping (real processes) -----------------------------------------------------------------


@pytest.fixture
def child_env(tmp_path):
    return procs.child_env(tmp_path / "data", tmp_path / "tagbase.sqlite3")


def start_serve(env: dict[str, str], *extra: str) -> tuple[procs.Child, int]:
    """``tagbase serve`` on a free port, once /healthz answers (and, with a worker, once the
    worker is ready: a signal before its handlers are set would just kill it)."""
    port = procs.free_port()
    child = procs.Child("serve", "--port", str(port), "--no-demo", *extra, env=env)
    try:
        assert procs.wait_for_http(f"http://127.0.0.1:{port}/healthz", 30, child) == 200
        if "--no-worker" not in extra:
            child.wait_for_output("Starting worker", 30)
    except BaseException:
        child.kill()
        raise
    return child, port


def worker_of(child: procs.Child) -> int:
    workers = [p for p in procs.children(child.pid) if " worker" in procs.cmdline(p)]
    assert len(workers) == 1, f"expected one worker child, found {workers}"
    return workers[0]


@linux_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_server_and_its_worker(child_env, signum):
    child, port = start_serve(child_env)
    worker = worker_of(child)
    child.proc.send_signal(signum)
    assert child.wait(timeout=10) == 0
    assert procs.gone(worker, timeout=5), "the worker outlived tagbase serve"
    output = child.output()
    assert f"Tagbase is running at http://127.0.0.1:{port}/  — log in as admin / " in output
    assert "shutting down gracefully" in output  # the worker got SIGTERM and said so
    assert "Traceback" not in output


@linux_only
@pytest.mark.django_db(transaction=True)
def test_serve_without_worker_starts_no_child(child_env):
    child, _ = start_serve(child_env, "--no-worker")
    try:
        assert procs.children(child.pid) == []
    finally:
        child.proc.send_signal(signal.SIGINT)
        assert child.wait(timeout=10) == 0


@linux_only
@pytest.mark.django_db(transaction=True)
def test_the_first_login_file_is_written_in_the_data_dir(child_env):
    child, _ = start_serve(child_env, "--no-worker")
    child.proc.send_signal(signal.SIGTERM)
    assert child.wait(timeout=10) == 0
    path = Path(child_env["TAGBASE_DATA_DIR"]) / "first-login.txt"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    password = path.read_text().split("password: ")[1].strip()
    assert f"log in as admin / {password}" in child.output()


# --- production mode (gunicorn + several workers) ---------------------------------------------


def test_web_and_workers_go_with_production():
    with pytest.raises(CommandError, match=r"--web and --workers go with --production\."):
        call_command("serve", "--workers", "3", "--port", str(procs.free_port()))


def test_production_refuses_debug(settings):
    settings.DEBUG = True
    with pytest.raises(CommandError, match=r"--production refuses DEBUG=true"):
        call_command("serve", "--production", "--port", str(procs.free_port()))


@linux_only
@pytest.mark.django_db(transaction=True)
def test_production_runs_gunicorn_and_several_workers_and_a_signal_stops_them_all(child_env):
    port = procs.free_port()
    child = procs.Child(
        "serve", "--production", "--web", "2", "--workers", "2", "--port", str(port), env=child_env
    )
    try:
        assert procs.wait_for_http(f"http://127.0.0.1:{port}/healthz", 60, child) == 200
        # Static files are collected and served by the gunicorn processes (WhiteNoise).
        assert procs.wait_for_http(f"http://127.0.0.1:{port}/login/", 10, child) == 200
        kids = procs.children(child.pid)
        gunicorn = [p for p in kids if "gunicorn" in procs.cmdline(p)]
        workers = [p for p in kids if " worker" in procs.cmdline(p)]
        assert len(gunicorn) == 1 and len(workers) == 2, [procs.cmdline(p) for p in kids]
        web_processes = procs.children(gunicorn[0])
        assert len(web_processes) == 2, [procs.cmdline(p) for p in web_processes]
        child.wait_for_output("Starting worker", 30)
    except BaseException:
        child.kill()
        raise
    child.proc.send_signal(signal.SIGTERM)
    assert child.wait(timeout=40) == 0
    for pid in gunicorn + workers + web_processes:
        assert procs.gone(pid, timeout=10), procs.cmdline(pid)
    output = child.output()
    assert "Tagbase (production: 2 web processes, 2 workers) is running at" in output
    assert "Traceback" not in output
