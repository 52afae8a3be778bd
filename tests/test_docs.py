"""The documentation keeps up with the code: the suite fails when a setting, a command or an
API path is added without being documented (the idea of datasette's tests/test_docs.py).

Everything is discovered from the code itself, not from a list kept here, so a new setting or
command cannot be forgotten in two places. A missing documentation file fails the tests with a
message naming it; it never skips them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tagbase.lib import env

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SETTINGS_FILE = ROOT / "tagbase" / "settings.py"
# Every reader tagbase.lib.env offers (env_str, env_bool, env_int, …), found rather than listed so
# that a new reader cannot hide the settings read through it.
ENV_HELPERS = {
    name for name in dir(env) if name.startswith("env_") and callable(getattr(env, name))
}
# Read by scripts/run_tests.py, the Makefile and the test suite rather than by settings.py.
TEST_RUN_VARIABLES = {
    "TAGBASE_TEST_POSTGRES_URL",
    "CI",
    "TAGBASE_TEST_ENGINE",
    "TAGBASE_LONG_TESTS",
    "DJANGO_ALLOW_ASYNC_UNSAFE",
}


def read_doc(name: str) -> str:
    path = DOCS / name
    if not path.exists():
        pytest.fail(f"docs/{name} does not exist; it must document this", pytrace=False)
    return path.read_text(encoding="utf-8")


# --- Settings --------------------------------------------------------------------------------


def _called_name(call: ast.Call) -> str:
    """``env_int`` for both ``env_int(...)`` and ``env.env_int(...)``."""
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def settings_read_from_environment() -> list[str]:
    """The first argument of every env_* call in tagbase/settings.py, in source order."""
    tree = ast.parse(SETTINGS_FILE.read_text(encoding="utf-8"))
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and _called_name(node) in ENV_HELPERS and node.args
    ]
    names: list[str] = []
    for node in sorted(calls, key=lambda n: (n.lineno, n.col_offset)):
        first = node.args[0]
        # A computed name could not be checked against the docs, so it is an error too.
        assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
            f"tagbase/settings.py line {node.lineno}: {_called_name(node)}() must be given the "
            "variable name as a string literal"
        )
        if first.value not in names:
            names.append(first.value)
    return names


SETTINGS = settings_read_from_environment()


def test_settings_are_found_in_the_settings_module():
    # Guards the parametrised test below: if the parser stopped finding env_* calls, every
    # setting would silently stop being checked.
    assert {"env_str", "env_bool", "env_int", "env_list", "env_choice"} <= ENV_HELPERS
    assert {"DATABASE_URL", "SECRET_KEY", "TAGBASE_DATA_DIR"} <= set(SETTINGS)


@pytest.mark.parametrize("name", SETTINGS)
def test_every_setting_is_documented_in_settings_md(name):
    assert f"`{name}`" in read_doc("settings.md"), f"docs/settings.md does not mention `{name}`"


def test_settings_md_documents_no_variable_that_nothing_reads():
    documented = set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]+)`", read_doc("settings.md"), re.M))
    unknown = documented - set(SETTINGS) - TEST_RUN_VARIABLES
    assert not unknown, f"docs/settings.md documents variables nothing reads: {sorted(unknown)}"


# --- Commands --------------------------------------------------------------------------------


def tagbase_commands() -> list[str]:
    """Management commands Tagbase itself defines (Django's and third parties' are not ours)."""
    files = (ROOT / "tagbase").glob("*/management/commands/*.py")
    return sorted(f.stem for f in files if not f.stem.startswith("_"))


COMMANDS = tagbase_commands()


def test_tagbase_defines_management_commands():
    assert COMMANDS, "no command found under tagbase/*/management/commands/"


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_is_documented_in_cli_md(command):
    # "tagbase import" must not be satisfied by "tagbase import_file".
    pattern = rf"tagbase {re.escape(command)}(?![\w-])"
    assert re.search(pattern, read_doc("cli.md")), f'docs/cli.md does not show "tagbase {command}"'


# --- API paths -------------------------------------------------------------------------------


def api_paths() -> tuple[str, list[str]]:
    """(mount prefix, every path of the live OpenAPI schema relative to it)."""
    from tagbase.api import api

    schema = api.get_openapi_schema()
    prefix = api.get_root_path({}).rstrip("/")
    relative = [p[len(prefix) :] if p.startswith(prefix) else p for p in schema["paths"]]
    return prefix, sorted(relative)


try:
    API_PREFIX, API_PATHS = api_paths()
    API_ERROR = ""
except Exception as exc:  # reported by a test below rather than as a collection error
    API_PREFIX, API_PATHS, API_ERROR = "/api/v1", [], f"{type(exc).__name__}: {exc}"


def test_the_openapi_schema_builds_and_has_paths():
    assert not API_ERROR, f"building the OpenAPI schema failed: {API_ERROR}"
    assert API_PATHS, "the OpenAPI schema has no paths"


@pytest.mark.parametrize("path", API_PATHS)
def test_every_api_path_is_documented_in_api_md(path):
    # Written either in full (/api/v1/audiences/{id}) or relative to the mount point, but as a
    # whole path: /audiences/{id} does not document /audiences.
    before = rf"(?:^|(?<=[\s`(|\"'])|(?<={re.escape(API_PREFIX)}))"
    pattern = before + re.escape(path) + r"(?![\w/{}-])"
    assert re.search(pattern, read_doc("api.md"), re.M), f"docs/api.md does not document {path}"


# --- Links -----------------------------------------------------------------------------------


def test_links_between_documentation_pages_resolve():
    broken = []
    for page in sorted(DOCS.rglob("*.md")):
        for target in re.findall(r"\]\(([^)\s#]+\.md)(?:#[^)]*)?\)", page.read_text("utf-8")):
            if "://" not in target and not (page.parent / target).resolve().exists():
                broken.append(f"{page.relative_to(ROOT)} -> {target}")
    assert not broken, "broken links: " + ", ".join(broken)
