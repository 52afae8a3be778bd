"""The ``tagbase`` entry point and the progress bar the commands draw."""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import get_commands

from tagbase import cli
from tagbase.lib.progress import Progress

ROOT = Path(__file__).resolve().parents[3]


def test_tagbase_without_arguments_lists_tagbases_commands_before_djangos(capsys):
    cli.main([])
    out = capsys.readouterr().out
    assert out.startswith("Tagbase commands (tagbase <command> --help for options):")
    ours, django = out.index("tagbase serve"), out.index("Available subcommands:")
    assert ours < django
    assert "[django]" in out[django:] and "migrate" in out[django:]


def test_the_console_script_runs_the_same_entry_point():
    done = subprocess.run(
        [sys.executable, "-m", "tagbase"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Tagbase commands")


def test_every_listed_command_exists_and_every_tagbase_command_is_listed():
    listed = {usage.split()[0] for usage, _ in cli.TAGBASE_COMMANDS}
    ours = {name for name, app in get_commands().items() if app.startswith("tagbase.")}
    assert listed == ours


def test_every_subcommand_in_the_list_has_a_section_in_docs_cli_md():
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^#+ `tagbase ([a-z]+(?: [a-z-]+)?)", text, re.M))
    for usage, _ in cli.TAGBASE_COMMANDS:
        command, *rest = usage.split()
        actions = rest[0].split("|") if rest and re.fullmatch(r"[a-z|-]+", rest[0]) else []
        for action in actions or [""]:
            name = f"{command} {action}".strip()
            assert name in headings or command in headings, f"no section for tagbase {name}"


# --- progress bar ---------------------------------------------------------------------------


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_nothing_when_stderr_is_not_a_terminal():
    stream = io.StringIO()
    with Progress("Customers", 10, stream=stream) as bar:
        bar.advance(10)
    assert stream.getvalue() == ""


def test_progress_draws_a_bar_with_counts_on_a_terminal_and_ends_the_line():
    stream = Terminal()
    with Progress("Customers", 200, stream=stream) as bar:
        bar.advance(50)
        assert bar.render() == "Customers      [#######-----------------------]  25% 50/200"
        bar.advance(150)
    drawn = stream.getvalue()
    assert drawn.startswith("\rCustomers      [")
    assert "100% 200/200" in drawn and drawn.endswith("\n")


@pytest.mark.parametrize(("done", "shown"), [(0, "Rows: 0"), (1234, "Rows: 1,234")])
def test_progress_without_a_total_counts_only(done, shown):
    bar = Progress("Rows", 0, stream=Terminal())
    bar.done = done
    assert bar.render() == shown
