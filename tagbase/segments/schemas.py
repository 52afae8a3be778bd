"""Request and response shapes of the segments API (docs/api.md "Segments").

The rule tree itself is passed through as a JSON object: ``segments.rules.validate`` checks it
and names the place of a problem (``rules[2].value``), which a pydantic model of the recursive
tree could not do as precisely.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from ninja import Field, Schema
from pydantic import AfterValidator, BaseModel, ConfigDict, model_validator

from tagbase.segments.models import JobAction, JobStatus

MAX_ID = 2**63 - 1  # largest value of a BIGINT key
MAX_DESCRIPTION_LENGTH = 10_000
MAX_SAMPLE = 100

RULES_DESCRIPTION = (
    "The rule tree: a group {op: and|or, negate, rules: [...]} of conditions "
    "{field, operator, value, ...}; see docs/segments.md"
)


def _storable(text: str) -> str:
    # Query parameters are not checked by the body parser; PostgreSQL text cannot hold NUL.
    if "\x00" in text:
        raise ValueError("the text contains the NUL character (U+0000)")
    return text


NameText = Annotated[
    str,
    AfterValidator(_storable),
    Field(max_length=400, description='The copy\'s name; by default the name with " (copy)"'),
]


class Input(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid")


# --- Segments ---------------------------------------------------------------------------------


class MetricsOut(Schema):
    customers: int | None = Field(description="Number of members (null before the first count)")
    percent_customers: Decimal | None = Field(description="Members / all customers x 100")
    percent_revenue: Decimal | None = Field(description="Members' receipt total / everyone's")
    average_receipt: Decimal | None = Field(description="null without receipts")
    total_value: Decimal | None = Field(description="Members' total receipt amount")
    as_of: datetime | None = Field(description="When the metrics were computed")


class SegmentOut(Schema):
    id: int
    name: str
    description: str
    rules: dict[str, Any] = Field(description=RULES_DESCRIPTION)
    summary: str = Field(description="The rule in words")
    uses: list[int] = Field(description="Ids of the saved segments the rule refers to")
    metrics: MetricsOut
    created_at: datetime
    updated_at: datetime


class SegmentListItem(Schema):
    id: int
    name: str
    description: str
    metrics: MetricsOut
    created_at: datetime
    updated_at: datetime


class SegmentPage(Schema):
    items: list[SegmentListItem]
    count: int = Field(description="Segments matching the filter, over all pages")
    limit: int
    offset: int


class SegmentCreateIn(Input):
    name: str = Field(description="1-200 characters; unique after trimming and case-folding")
    description: str = Field("", max_length=MAX_DESCRIPTION_LENGTH)
    rules: dict[str, Any] = Field(description=RULES_DESCRIPTION)


class SegmentUpdateIn(Input):
    name: str | None = None
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_LENGTH)
    rules: dict[str, Any] | None = Field(None, description=RULES_DESCRIPTION)

    @model_validator(mode="after")
    def _something_to_change(self) -> SegmentUpdateIn:
        if self.name is None and self.description is None and self.rules is None:
            raise ValueError("send name, description, rules or several of them")
        return self


# --- Preview ----------------------------------------------------------------------------------


class PreviewIn(Input):
    rules: dict[str, Any] = Field(description=RULES_DESCRIPTION)
    sample: int = Field(
        20, ge=0, le=MAX_SAMPLE, description=f"How many members to return, 0 to {MAX_SAMPLE}"
    )
    segment_id: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="The segment being edited, if any: a rule that would use it is refused "
        "(segment_cycle)",
    )


class SampleMemberOut(Schema):
    sc_id: int
    first_name: str
    last_name: str
    city: str


class PreviewOut(Schema):
    rules: dict[str, Any] = Field(description="The rule as cleaned (values trimmed, typed)")
    summary: str
    metrics: MetricsOut
    sample: list[SampleMemberOut] = Field(description="The first members in sc_id order")


# --- Members ----------------------------------------------------------------------------------


class SegmentMemberOut(Schema):
    sc_id: int


class SegmentMemberPage(Schema):
    items: list[SegmentMemberOut]
    next_after: int | None = Field(
        description="Pass as ?after= for the next page; null on the last page"
    )


# --- Include in a target audience -------------------------------------------------------------


class IncludeIn(Input):
    action: JobAction = Field(description="add or remove")
    audience: int | None = Field(None, ge=1, le=MAX_ID, description="An existing audience id")
    new_audience_name: str | None = Field(
        None, description="For add: create an audience of this name (a taken name is refused)"
    )


class JobOut(Schema):
    id: int
    segment: int | None = Field(description="null once the segment is deleted")
    segment_name: str
    action: JobAction
    audience: int | None = Field(description="null once the audience is deleted")
    audience_name: str
    status: JobStatus = Field(description="queued, running, succeeded or failed")
    expected: int | None = Field(description="How many would change when the job was made")
    operation: int | None = Field(description="The audience operation, once the job succeeded")
    added: int | None
    removed: int | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None


# --- Fields -----------------------------------------------------------------------------------


class ChoiceOut(Schema):
    value: str
    label: str


class OperatorOut(Schema):
    id: str
    label: str
    arity: str = Field(description="The value it takes: none, one, two (between), list, days")


class FieldOut(Schema):
    id: str
    label: str
    type: str
    params: list[str] = Field(description="Parameters beside the value: event, days, key")
    choices: list[ChoiceOut]
    whole: bool
    minimum: int | None
    maximum: int | None
    help: str
    operators: list[OperatorOut]


class FieldGroupOut(Schema):
    group: str
    fields: list[FieldOut]


class FieldCatalogue(Schema):
    groups: list[FieldGroupOut]
