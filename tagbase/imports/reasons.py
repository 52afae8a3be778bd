"""Every reason code an import can give, file-level and row-level, with its message.

docs/imports.md lists the same codes with the same messages; tests/test_reason_docs.py checks
that it does.
"""

from __future__ import annotations

from tagbase.imports.rows import ROW_REASONS
from tagbase.lib import csvread, identifiers

NAME_REASONS = {
    "name_empty": "The audience name is empty.",
    "name_too_long": "The audience name is longer than 200 characters.",
    "name_control_character": "The audience name has an invisible or control character.",
    "name_type": "The audience name is not text.",
}

# Row-level reasons that only the whole file can give (found after every row has been read).
FILE_WIDE_ROW_REASONS = {
    "conflicting_action": "Per-row mode: the file both adds this customer to this audience and "
    "removes them from it (on this line and another); none of those lines is applied.",
}

RESULT_REASONS = {
    "duplicate_in_file": "The same customer appears earlier in the file.",
    "not_found": "No customer has this identifier.",
    "ambiguous": "Several customers have this identifier; it was not applied to any.",
}

PIPELINE_FILE_REASONS = {
    "NO_DATA_ROWS": "The file has no data rows (empty, blank lines or a header only).",
    "TOO_MANY_AUDIENCES": "Per-row mode: the file names more audiences than allowed.",
    "TOO_MANY_NEW_AUDIENCES": "Per-row mode: the file would create more audiences than allowed.",
    "ACTION_COLUMN_IN_SINGLE_MODE": "Mode single: a row has an add/remove column (+ or -), which "
    "only per-row mode reads.",
    "TOO_LARGE": "The upload is larger than TAGBASE_IMPORT_MAX_BYTES.",
    "INTERNAL": "The import stopped on an unexpected error; nothing of it stays applied.",
}


def row_reasons() -> dict[str, str]:
    merged: dict[str, str] = {}
    merged.update(identifiers.REASON_CODES)
    merged.update(csvread.ROW_ISSUE_CODES)
    merged.update(NAME_REASONS)
    merged.update(ROW_REASONS)
    merged.update(FILE_WIDE_ROW_REASONS)
    return merged


def file_reasons() -> dict[str, str]:
    return {**csvread.FILE_REJECTION_CODES, **PIPELINE_FILE_REASONS}


def message_for(code: str) -> str:
    return row_reasons().get(code) or RESULT_REASONS.get(code) or code
