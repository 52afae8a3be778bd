"""Request and response shapes of the imports API (docs/api.md, docs/imports.md).

The report schema lists exactly the keys of ``tagbase.imports.queries.job_report`` (one report
for the UI, the API and the CLI), plus ``links``. Every report carries the add counters and the
remove counters: a per-row file may add some customers and remove others (a third column).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from ninja import Field, Schema
from pydantic import BaseModel, ValidationInfo, field_validator

from tagbase.imports.models import ImportMode, ImportStatus, Stage
from tagbase.imports.services import ImportRequest
from tagbase.lib.identifiers import IdType

MAX_ID = 2**63 - 1  # largest BIGINT; a bigger id would overflow the database
# An audience given by id: ASCII digits only. Anything else is a name.
_AUDIENCE_ID = re.compile(r"[0-9]+", re.ASCII)

Encoding = Literal["auto", "utf-8", "cp1251", "utf-16"]
Delimiter = Literal["auto", ";", ",", "tab"]


# --- Upload form --------------------------------------------------------------------------------


class ImportForm(BaseModel):
    """The form fields of `POST /imports` beside the `file` part. Unknown fields are refused."""

    # Cross-field rules are field validators, not a model validator, so that an error names the
    # field it is about. Unknown fields are refused by the handler: ninja reads only these.

    mode: ImportMode = Field(
        ImportMode.SINGLE,
        description="single: one audience for the whole file; per_row: `identifier; audience`",
    )
    action: Literal["add", "remove"] = Field(
        "add",
        description="Add to or remove from. In per_row mode a row may name its own action in a "
        "third column (`+` / `-`); this is the action of rows that do not.",
    )
    id_type: IdType = Field(description="What the identifiers in the file are")
    audience: str = Field(
        "",
        description=(
            "Mode single: the audience's id (digits), or the name of an existing audience or of "
            "a new one to create. Not used in per_row mode."
        ),
    )
    audience_name: str = Field(
        "",
        description="Mode single: the audience by name, even a name made of digits only "
        "(instead of `audience`).",
    )
    dry_run: bool = Field(False, description="Stop at `previewed`; apply with /commit")
    encoding: Encoding = Field("auto", description="auto detects UTF-8, cp1251 and UTF-16")
    delimiter: Delimiter = Field("auto", description="auto detects ; , and TAB")

    @field_validator("audience")
    @classmethod
    def _audience_id_in_range(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("mode") == ImportMode.PER_ROW and value.strip():
            raise ValueError("per_row mode takes each row's audience from the file; leave it out")
        text = value.strip()
        if _AUDIENCE_ID.fullmatch(text) and not 1 <= int(text) <= MAX_ID:
            raise ValueError(
                f"an audience id is between 1 and {MAX_ID}; "
                "to name an audience made of digits, send audience_name"
            )
        return value

    @field_validator("audience_name")
    @classmethod
    def _one_way_to_name_the_audience(cls, value: str, info: ValidationInfo) -> str:
        if value.strip() and info.data.get("mode") == ImportMode.PER_ROW:
            raise ValueError("per_row mode takes each row's audience from the file; leave it out")
        if value.strip() and str(info.data.get("audience", "")).strip():
            raise ValueError("send either audience or audience_name, not both")
        return value

    def as_request(self) -> ImportRequest:
        """The service's request: an all-digit ``audience`` is an id, anything else a name."""
        text = self.audience.strip()
        audience_id, name = None, self.audience_name
        if _AUDIENCE_ID.fullmatch(text):
            audience_id = int(text)
        elif text:
            name = text
        return ImportRequest(
            mode=self.mode,
            action=self.action,
            id_type=self.id_type,
            audience_id=audience_id,
            audience_name=name,
            dry_run=self.dry_run,
            encoding=self.encoding,
            delimiter=self.delimiter,
        )


# --- The report ---------------------------------------------------------------------------------


class ImportErrorOut(Schema):
    code: str = Field(description="A whole-file reason code (EMPTY_FILE, ENCODING…)")
    message: str
    line: int | None = Field(description="The line where the problem is, when known")
    offset: int | None = Field(description="The byte offset, when known")


class ImportLinks(Schema):
    """Where to go next. A link is null when that action is not possible now."""

    self: str = Field(description="This report; poll it for progress")
    rejects: str | None = Field(description="The rejected rows CSV, once it exists")
    commit: str | None = Field(description="Apply a previewed (dry-run) import")
    cancel: str | None = Field(description="Stop an import that has not finished")
    undo: str | None = Field(description="Undo a finished import (once)")


class ImportAudienceOut(Schema):
    """One audience of an import and what the file's rows did to it."""

    audience_id: int | None = Field(description="Null while it is still to be created")
    name: str = Field(description="As in the file (first spelling), or as chosen (mode single)")
    created: bool = Field(description="The import created it")
    already_member: int = Field(description="Add rows: were members already")
    added: int = Field(description="Add rows: became members")
    not_member: int = Field(description="Remove rows: were not members")
    removed: int = Field(description="Remove rows: stopped being members")
    operations: list[int] = Field(description="Its audience operations: one per action applied")


class ImportOut(Schema):
    """The import report. For every import ``rows_read = blank + invalid + duplicate_in_file +
    not_found + ambiguous + already_member + added + not_member + removed``."""

    job_id: int
    status: ImportStatus
    stage: Stage
    progress: int = Field(description="0-100")
    mode: ImportMode
    action: Literal["add", "remove"] = Field(
        description="The action of every row that does not name its own (per_row: + / -)"
    )
    identifier_type: IdType
    audience_id: int | None = Field(description="Mode single: the audience, once it exists")
    audience: str | None = Field(description="Mode single: the audience's name")
    dry_run: bool
    file_name: str = Field(description="As uploaded, for display only")
    sha256: str
    size_bytes: int
    encoding: str | None = Field(description="As detected (or chosen)")
    delimiter: str | None = Field(description="As detected (or chosen)")
    has_header: bool
    rows_read: int = Field(description="Data rows read (not the header)")
    blank: int
    invalid: int
    invalid_by_reason: dict[str, int] = Field(description="Invalid rows per reason code")
    duplicate_in_file: int
    not_found: int
    ambiguous: int
    already_member: int = Field(description="Add rows: were members already")
    added: int = Field(description="Add rows: became members")
    not_member: int = Field(description="Remove rows: were not members")
    removed: int = Field(description="Remove rows: stopped being members")
    audiences_created: list[str] = Field(description="New audiences (or, previewed: to create)")
    rejected_rows: int = Field(description="invalid + duplicate_in_file + not_found + ambiguous")
    error: ImportErrorOut | None = Field(description="Why the file was rejected or failed")
    created_by: str = Field(description="A user name, or token:<name>")
    source: str = Field(description="ui, api or cli")
    created_at: datetime | None
    finished_at: datetime | None
    undone: bool
    cancel_requested: bool = Field(
        description="Cancel asked; the worker stops before the next audience"
    )
    timings: dict[str, float] = Field(description="Seconds spent per stage (parse, resolve…)")
    operations: list[int] = Field(description="The audience operations the import applied")
    audiences: list[ImportAudienceOut] = Field(
        description="Per audience, by name: what its add and remove rows did"
    )
    links: ImportLinks


class ImportPage(Schema):
    items: list[ImportOut]
    count: int = Field(description="Imports matching the filter, over all pages")
    limit: int
    offset: int
