"""Request and response shapes of the set-operations API (docs/api.md "Set operations").

The expression tree is passed through as a JSON object: ``sets.expressions.parse`` checks it and
names the place of a problem (``expression.left.audience``), as the segment rule is checked.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ninja import Field, Schema
from pydantic import BaseModel, ConfigDict

from tagbase.sets.models import JobStatus, Mode

MAX_ID = 2**63 - 1  # largest value of a BIGINT key

EXPRESSION_DESCRIPTION = (
    'An operand {"audience": id} or {"segment": id}, or a combination '
    '{"op": "union" | "intersect" | "difference", "left": <expression>, "right": <expression>}; '
    "at most 3 operands; see docs/sets.md"
)


class Input(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid")


class SetPreviewIn(Input):
    expression: dict[str, Any] = Field(description=EXPRESSION_DESCRIPTION)
    mode: Mode = Field(Mode.ADD, description="With audience: add the result, or replace with it")
    audience: int | None = Field(
        None, ge=1, le=MAX_ID, description="A target audience: count what would change in it"
    )


class SetOverlapIn(Input):
    operands: list[dict[str, Any]] = Field(
        description='2 or 3 operands, each {"audience": id} or {"segment": id}'
    )


class SetCombineIn(Input):
    expression: dict[str, Any] = Field(description=EXPRESSION_DESCRIPTION)
    mode: Mode = Field(
        Mode.ADD,
        description="add: add the result to the audience; replace: make the audience equal to "
        "the result (add the missing, remove the rest)",
    )
    audience: int | None = Field(None, ge=1, le=MAX_ID, description="An existing audience id")
    new_audience_name: str | None = Field(
        None, description="Or create an audience of this name and fill it (mode add)"
    )


class SetOperandOut(Schema):
    position: int = Field(description="0-based, left to right in the expression")
    kind: str = Field(description="audience or segment")
    id: int
    name: str


class SetRegionOut(Schema):
    operands: list[int] = Field(description="Positions of the operands these customers are in")
    label: str = Field(description="“A” ∩ “B” only, …")
    count: int = Field(description="Customers in exactly these operands")


class SetTargetOut(Schema):
    audience: int
    name: str
    mode: Mode
    would_add: int = Field(description="Customers of the result not in the audience now")
    already_member: int = Field(description="Customers of the result in the audience now")
    would_remove: int = Field(description="Members outside the result (replace only; else 0)")
    count_after: int = Field(description="Members the audience would have")


class SetPreviewOut(Schema):
    expression: dict[str, Any]
    summary: str = Field(description="The expression in words")
    operands: list[SetOperandOut]
    regions: list[SetRegionOut] = Field(description="Every region of the Venn diagram, empty too")
    union: int = Field(description="Customers in at least one operand")
    result: int = Field(description="Customers in the result, exactly")
    target: SetTargetOut | None
    as_of: datetime = Field(description="When it was counted")


class SetJobOut(Schema):
    id: int
    expression: dict[str, Any]
    summary: str
    mode: Mode
    audience: int | None = Field(description="null once the audience is deleted")
    audience_name: str
    created_audience: bool = Field(description="The audience was created by this request")
    status: JobStatus = Field(description="queued, running, succeeded or failed")
    result_count: int | None = Field(description="Customers in the result when the job was made")
    expected_added: int | None
    expected_removed: int | None
    operation: int | None = Field(description="The audience operation, once the job succeeded")
    added: int | None
    removed: int | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


class AsOfOut(Schema):
    audience: int
    audience_name: str
    at: datetime = Field(description="The moment read (a date means the end of that day)")
    count: int = Field(description="Customers who were members at that moment")


class AsOfMember(Schema):
    sc_id: int


class AsOfMemberPage(Schema):
    items: list[AsOfMember]
    next_after: int | None = Field(
        description="Pass as ?after= for the next page; null on the last page"
    )
