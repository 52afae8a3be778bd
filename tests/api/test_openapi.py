"""The OpenAPI schema is a contract: the live one must equal the committed docs/openapi.json.

After an intended API change, regenerate the committed copy and review the diff:

    UPDATE_OPENAPI=1 .venv/bin/python -m pytest tests/api/test_openapi.py
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path

import pytest
from django.test import Client

from .support import API

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
REGENERATE = "UPDATE_OPENAPI=1 .venv/bin/python -m pytest tests/api/test_openapi.py"


def live_schema() -> dict:
    response = Client().get(f"{API}/openapi.json")
    assert response.status_code == 200
    return response.json()


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_the_committed_openapi_schema_matches_the_live_one():
    live = render(live_schema())
    if os.environ.get("UPDATE_OPENAPI") == "1":
        SCHEMA_FILE.parent.mkdir(exist_ok=True)
        SCHEMA_FILE.write_text(live, encoding="utf-8")
    if not SCHEMA_FILE.exists():
        pytest.fail(f"docs/openapi.json is missing; create it with: {REGENERATE}", pytrace=False)
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    if committed != live:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                live.splitlines(keepends=True),
                "docs/openapi.json (committed)",
                "live schema",
                n=2,
            )
        )
        pytest.fail(
            f"The API changed but docs/openapi.json did not. If intended, run: {REGENERATE}\n"
            + diff[:6000],
            pytrace=False,
        )


def operations(schema: dict):
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def test_every_endpoint_requires_authentication_and_declares_its_errors():
    for name, operation in operations(live_schema()):
        assert {"TokenAuth", "SessionAuth"} <= {k for s in operation["security"] for k in s}, name
        for status in ("401", "403", "422", "500"):
            response = operation["responses"].get(status)
            assert response, f"{name} does not declare {status}"
            ref = response["content"]["application/json"]["schema"]["$ref"]
            assert ref.endswith("/ErrorOut"), (name, status, ref)


def test_every_endpoint_has_a_unique_readable_operation_id_and_a_tag():
    ids = []
    for name, operation in operations(live_schema()):
        assert operation["tags"] and set(operation["tags"]) <= {
            "customers", "receipts", "events", "audiences", "operations", "imports",
            "segments", "campaigns", "sets", "audit",
        }, name  # fmt: skip
        ids.append(operation["operationId"])
        assert "." not in operation["operationId"] and "tagbase" not in operation["operationId"]
    assert len(ids) == len(set(ids))


def _schema_classes() -> list[type]:
    import ninja

    import tagbase.api  # noqa: F401  (imports every router and its schemas)

    found, todo = [], list(ninja.Schema.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith("tagbase."):
            found.append(cls)
    return found


def test_no_two_api_schemas_share_a_name():
    """django-ninja names OpenAPI components by class name and silently merges two classes of
    the same name: one of them then documents the other's fields."""
    by_name: dict[str, set[str]] = {}
    for cls in _schema_classes():
        by_name.setdefault(cls.__name__, set()).add(f"{cls.__module__}.{cls.__qualname__}")
    clashes = {name: sorted(where) for name, where in by_name.items() if len(where) > 1}
    assert clashes == {}, f"rename one of each: {clashes}"
