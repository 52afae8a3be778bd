"""docs/imports.md lists every reason code an import can give, with the message the code gives
(the rejected-rows file and the report page show the same text)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tagbase.imports import reasons

DOC = (Path(__file__).resolve().parents[3] / "docs" / "imports.md").read_text(encoding="utf-8")
ALL = {**reasons.file_reasons(), **reasons.row_reasons(), **reasons.RESULT_REASONS}


@pytest.mark.parametrize(("code", "message"), sorted(ALL.items()))
def test_every_reason_code_is_documented_with_its_message(code, message):
    assert f"| `{code}` | {message} |" in DOC
