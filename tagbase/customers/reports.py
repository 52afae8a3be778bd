"""What a load of customers, receipts or events tells its caller: the report and the two tiers
of problems (a whole file refused, or single rows skipped)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Errors listed in a report; every failed row is still counted in ``failed``.
MAX_LISTED_ERRORS = 1_000


class FileRejected(ValueError):
    """The input as a whole was refused before anything was written.

    ``code`` is stable (``file_not_found``, ``encoding``, ``binary``, ``empty``, ``no_header``,
    ``header_invalid``, ``unknown_columns``, ``missing_columns``, ``csv_malformed``…); ``line``
    is the file line the problem was found on, when there is one.
    """

    def __init__(self, code: str, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.line = line

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "line": self.line}


@dataclass(frozen=True)
class RowError:
    """One problem with one row: the file line, the column, a stable code, a sentence."""

    line: int
    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class RowProblems(Exception):
    """Raised while parsing one row; carries every problem found in it."""

    def __init__(self, problems: list[tuple[str, str, str]]) -> None:
        super().__init__(f"{len(problems)} problem(s)")
        self.problems = problems  # (field, code, message)


@dataclass
class LoadReport:
    """Counts of one load. ``rows`` = data rows read (blank lines are not rows) and
    ``rows == created + updated + failed`` once the load has finished."""

    rows: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)

    def fail(self, line: int, problems: list[tuple[str, str, str]]) -> None:
        """Count one failed row and list its problems while the list has room."""
        self.failed += 1
        for field_name, code, message in problems:
            if len(self.errors) >= MAX_LISTED_ERRORS:
                break
            self.errors.append(RowError(line, field_name, code, message))

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "created": self.created,
            "updated": self.updated,
            "failed": self.failed,
            "errors": [e.as_dict() for e in self.errors],
        }
