"""Request and response shapes of the audiences API (docs/api.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from django.conf import settings
from ninja import Field, Schema
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    PlainValidator,
    WithJsonSchema,
    model_validator,
)

from tagbase.audiences.models import (
    MAX_TTL_DAYS,
    Operation,
    OperationAction,
    OperationKind,
    OperationStatus,
)
from tagbase.lib.identifiers import IdType

MAX_ID = 2**63 - 1  # largest value of a BIGINT key; bigger ids would overflow the database
MAX_DESCRIPTION_LENGTH = 10_000


def _storable(text: str) -> str:
    # PostgreSQL text cannot hold NUL; refused on both engines alike. (Bodies are checked for
    # it by the API's parser; this is for query parameters.)
    if "\x00" in text:
        raise ValueError("the text contains the NUL character (U+0000)")
    return text


SearchText = Annotated[
    str,
    AfterValidator(_storable),
    Field(max_length=200, description="Part of the name, any case"),
]


class Input(BaseModel):
    """Request bodies refuse unknown fields, so a typo is an error, not a silent no-op. Plain
    pydantic, not ninja's Schema: its ORM-reading wrapper costs ~7x on 10,000-row bodies."""

    model_config = ConfigDict(extra="forbid")


# --- Audiences --------------------------------------------------------------------------------


class AudienceOut(Schema):
    id: int
    name: str
    description: str
    member_count: int
    last_set_at: datetime | None = Field(description="When a customer was last added")
    created_at: datetime
    updated_at: datetime
    member_ttl_days: int | None = Field(
        description="Memberships set by an add expire this many days after it; null: never"
    )


class AudiencePage(Schema):
    items: list[AudienceOut]
    count: int = Field(description="Audiences matching the filter, over all pages")
    limit: int
    offset: int


def _ttl_days(description: str) -> Any:
    return Field(None, ge=1, le=MAX_TTL_DAYS, description=description)


class AudienceCreateIn(Input):
    name: str = Field(description="1-200 characters; unique after trimming and case-folding")
    description: str = Field("", max_length=MAX_DESCRIPTION_LENGTH)
    member_ttl_days: int | None = _ttl_days(
        "Default time-to-live of the memberships its adds set, in days; null or absent: none"
    )


class AudienceUpdateIn(Input):
    name: str | None = None
    description: str | None = Field(None, max_length=MAX_DESCRIPTION_LENGTH)
    member_ttl_days: int | None = _ttl_days(
        "New default time-to-live, in days, for adds from now on; null clears it"
    )

    @model_validator(mode="after")
    def _something_to_change(self) -> AudienceUpdateIn:
        if self.name is None and self.description is None and not self.changes_ttl:
            raise ValueError("send member_ttl_days, or name, description or both")
        return self

    @property
    def changes_ttl(self) -> bool:
        """Whether member_ttl_days was sent (null included: it clears the default)."""
        return "member_ttl_days" in self.model_fields_set


# --- Members ----------------------------------------------------------------------------------


class MemberOut(Schema):
    sc_id: int
    set_at: datetime
    operation_id: int | None
    expires_at: datetime | None = Field(description="When the membership expires; null: never")


class MemberPage(Schema):
    items: list[MemberOut]
    next_after: int | None = Field(
        description="Pass as ?after= for the next page; null on the last page"
    )


class MembershipOut(Schema):
    member: bool = True
    set_at: datetime
    operation_id: int | None
    expires_at: datetime | None = Field(description="When the membership expires; null: never")


class CustomerAudienceOut(Schema):
    audience_id: int
    name: str
    set_at: datetime
    operation_id: int | None
    expires_at: datetime | None = Field(description="When the membership expires; null: never")


class CustomerAudiences(Schema):
    items: list[CustomerAudienceOut]


def _identifier_value(value: Any) -> str:
    # JSON numbers are accepted for convenience (sc_id, phones); booleans and floats are not,
    # because true would silently become customer 1 and 1e15 has lost its digits.
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("an identifier must be a string or a whole number")
    return str(value)


IdentifierValue = Annotated[
    str,
    PlainValidator(_identifier_value),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
]


class MembersChangeIn(Input):
    id_type: IdType = Field(description="What the values in ids are")
    ids: list[IdentifierValue] = Field(
        min_length=1,
        max_length=settings.TAGBASE_MAX_IDS_PER_REQUEST,
        description="Identifiers of the customers, as strings or whole numbers",
    )


class MembersAddIn(MembersChangeIn):
    ttl_days: int | None = _ttl_days(
        "The memberships this add sets (or renews) expire this many days later; absent or "
        "null: the audience's member_ttl_days"
    )


# --- Operations -------------------------------------------------------------------------------


class OperationOut(Schema):
    id: int
    audience_id: int | None = Field(description="null once the audience is deleted")
    audience_name: str = Field(description="The audience's name when the operation ran")
    kind: OperationKind
    action: OperationAction
    status: OperationStatus
    actor_label: str = Field(description="Who: a user name, or token:<name> for a token")
    source_ref: str
    requested: int
    added: int
    already_member: int
    removed: int
    not_member: int
    not_found: int
    ambiguous: int
    invalid: int
    created_at: datetime
    finished_at: datetime | None
    undoes_id: int | None = Field(description="For an undo: the operation it undid")
    can_undo: bool


class OperationPage(Schema):
    items: list[OperationOut]
    count: int
    limit: int
    offset: int


class RejectedOut(Schema):
    value: str
    reason: str = Field(description="not_found, ambiguous, or the invalid value's reason code")
    message: str


class MembersChangeOut(OperationOut):
    matched: int = Field(description="Values sent that named exactly one customer")
    duplicates: int = Field(description="Values repeating an earlier value of the request")
    rejected: list[RejectedOut]


def operation_fields(op: Operation) -> dict[str, Any]:
    """The OperationOut fields of an operation, to combine with request-specific ones."""
    return {name: getattr(op, name) for name in OperationOut.model_fields}


# The members CSV (GET /audiences/{id}/members.csv) is streamed, not a schema: its OpenAPI entry.
MEMBERS_CSV = {
    "200": {
        "description": "Identifier export: a header naming the identifier type, then one "
        "identifier a line. Ad-platform export: the platform's header (Email,Phone or "
        "email,phone), then one row per member with an e-mail or a phone: SHA-256 hex of each "
        "normalised value, empty when the member has none. UTF-8, CRLF, formula-escaped.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    }
}
