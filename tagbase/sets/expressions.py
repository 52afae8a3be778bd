"""Set expressions over audiences and saved segments: the tree, its words, its SQL and its truth
table (docs/sets.md is the contract).

An expression is a JSON tree:

- an operand: ``{"audience": <id>}`` or ``{"segment": <id>}``;
- a combination: ``{"op": "union" | "intersect" | "difference", "left": <expr>,
  "right": <expr>}`` — the union, intersection and difference (left minus right) of the two
  sides.

At most ``MAX_OPERANDS`` operands in all. Operands are numbered left to right (their
*position*); the overlap of the operands is counted per region of their Venn diagram, a region
being the set of positions a customer belongs to (a bit mask), and any expression's result is a
union of regions — so one aggregate query gives both the overlap view and the exact result
count (``Expression.holds``).

SQL: an audience operand reads its memberships, a segment operand is the segment compiler's
query of its members (``segments.compiler.member_ids_sql``); combinations are ``UNION`` /
``INTERSECT`` / ``EXCEPT`` of the two sides, each side wrapped as a derived table so the text is
valid on SQLite (which refuses parenthesised compound members) and PostgreSQL alike. Ids are
parameters; no user text reaches the SQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tagbase.lib.errors import ServiceError
from tagbase.segments.compiler import member_ids_sql
from tagbase.segments.rules import validate

MAX_OPERANDS = 3
MAX_ID = 2**63 - 1
# The signs in words shown to people: union, intersection, minus sign.
OPERATORS = {"union": "\u222a", "intersect": "\u2229", "difference": "\u2212"}
_SQL = {"union": "UNION", "intersect": "INTERSECT", "difference": "EXCEPT"}
KINDS = ("audience", "segment")


class SetError(ServiceError):
    """A set operation was refused; ``field`` names the input (``expression.left.right``)."""

    code = "set_error"


@dataclass(frozen=True)
class Operand:
    kind: str  # "audience" | "segment"
    id: int
    position: int  # 0-based, left to right
    path: str = field(default="", compare=False)  # where it is in the JSON, for errors

    def to_json(self) -> dict[str, Any]:
        return {self.kind: self.id}


@dataclass(frozen=True)
class Combine:
    op: str  # "union" | "intersect" | "difference"
    left: Expression
    right: Expression

    def to_json(self) -> dict[str, Any]:
        return {"op": self.op, "left": self.left.to_json(), "right": self.right.to_json()}


Expression = Operand | Combine


def parse(tree: Any, path: str = "expression") -> Expression:
    """Check a JSON expression and number its operands; ``SetError`` names the place."""
    counter = iter(range(10**6))
    expression = _parse(tree, path, counter, depth=0)
    count = len(operands(expression))
    if count > MAX_OPERANDS:
        raise SetError(
            f"{path}: at most {MAX_OPERANDS} operands, this expression has {count}.",
            field=path,
            code="too_many_operands",
        )
    return expression


def _parse(tree: Any, path: str, counter: Iterator[int], depth: int) -> Expression:
    if depth >= MAX_OPERANDS:  # deeper than any tree of MAX_OPERANDS operands
        raise SetError(
            f"{path}: at most {MAX_OPERANDS} operands in all.",
            field=path,
            code="too_many_operands",
        )
    if not isinstance(tree, dict):
        raise SetError(
            f'{path}: expected an operand {{"audience": id}} or {{"segment": id}}, or a '
            'combination {"op", "left", "right"}.',
            field=path,
            code="expression_invalid",
        )
    if "op" in tree:
        if set(tree) != {"op", "left", "right"}:
            extra = sorted(set(tree) - {"op", "left", "right"}) or sorted(
                {"left", "right"} - set(tree)
            )
            raise SetError(
                f"{path}: a combination has exactly op, left and right (not {extra[0]!r}).",
                field=path,
                code="expression_invalid",
            )
        if tree["op"] not in OPERATORS:
            raise SetError(
                f"{path}.op: must be one of {', '.join(OPERATORS)}.",
                field=f"{path}.op",
                code="expression_invalid",
            )
        left = _parse(tree["left"], f"{path}.left", counter, depth + 1)
        right = _parse(tree["right"], f"{path}.right", counter, depth + 1)
        return Combine(tree["op"], left, right)
    if len(tree) != 1 or next(iter(tree)) not in KINDS:
        raise SetError(
            f'{path}: an operand is {{"audience": id}} or {{"segment": id}}.',
            field=path,
            code="expression_invalid",
        )
    kind, value = next(iter(tree.items()))
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise SetError(
            f"{path}.{kind}: must be a positive whole number (an id).",
            field=f"{path}.{kind}",
            code="expression_invalid",
        )
    return Operand(kind, value, next(counter), path)


def operands(expression: Expression) -> list[Operand]:
    """The operands left to right (by position)."""
    if isinstance(expression, Operand):
        return [expression]
    return operands(expression.left) + operands(expression.right)


def union_of(items: list[Operand]) -> Expression:
    """The union of the operands (renumbered left to right): what the overlap view covers."""
    numbered = [Operand(o.kind, o.id, i, o.path) for i, o in enumerate(items)]
    expression: Expression = numbered[0]
    for item in numbered[1:]:
        expression = Combine("union", expression, item)
    return expression


def holds(expression: Expression, mask: int) -> bool:
    """Whether a customer in exactly the operands of ``mask`` (bit i = position i) is in the
    result."""
    if isinstance(expression, Operand):
        return bool(mask >> expression.position & 1)
    left, right = holds(expression.left, mask), holds(expression.right, mask)
    if expression.op == "union":
        return left or right
    if expression.op == "intersect":
        return left and right
    return left and not right


# --- Resolved operands: names, rules ----------------------------------------------------------


@dataclass(frozen=True)
class Source:
    """What an operand stands for when it is evaluated: its name for people and, for a segment,
    its rule as it was when resolved (a job keeps it, like an include job)."""

    kind: str
    id: int
    name: str
    rules: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kind": self.kind, "id": self.id, "name": self.name}
        if self.rules is not None:
            data["rules"] = self.rules
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Source:
        return cls(data["kind"], int(data["id"]), data["name"], data.get("rules"))

    @property
    def label(self) -> str:
        return f"“{self.name}”" if self.kind == "audience" else f"segment “{self.name}”"


def describe(expression: Expression, sources: list[Source], *, top: bool = True) -> str:
    """The expression in words, operands quoted, inner combinations in parentheses:
    ``(“VIP” U “Buyers”) - segment “Churn risk”`` with the mathematical signs."""
    if isinstance(expression, Operand):
        return sources[expression.position].label
    text = (
        f"{describe(expression.left, sources, top=False)} {OPERATORS[expression.op]} "
        f"{describe(expression.right, sources, top=False)}"
    )
    return text if top else f"({text})"


# --- SQL --------------------------------------------------------------------------------------


def operand_sql(source: Source, *, now: datetime | None = None) -> tuple[str, list[Any]]:
    """``SELECT customer_id`` of one operand's customers (distinct)."""
    if source.kind == "audience":
        return (
            "SELECT customer_id FROM audiences_membership WHERE audience_id = %s",
            [source.id],
        )
    sql, params = member_ids_sql(validate(source.rules), now=now)
    return sql, list(params)


def result_sql(
    expression: Expression, sources: list[Source], *, now: datetime | None = None
) -> tuple[str, list[Any]]:
    """``SELECT customer_id`` of the expression's result: one set-based statement, each id
    once (UNION, INTERSECT and EXCEPT return distinct rows)."""
    aliases = iter(range(10**6))

    def build(node: Expression) -> tuple[str, list[Any]]:
        if isinstance(node, Operand):
            return operand_sql(sources[node.position], now=now)
        left, left_params = build(node.left)
        right, right_params = build(node.right)
        sql = (
            f"SELECT customer_id FROM ({left}) AS s{next(aliases)} {_SQL[node.op]} "
            f"SELECT customer_id FROM ({right}) AS s{next(aliases)}"
        )
        return sql, [*left_params, *right_params]

    return build(expression)


def regions_sql(
    sources: list[Source], *, target: int | None = None, now: datetime | None = None
) -> tuple[str, list[Any]]:
    """``SELECT mask, COUNT(*)``: for each region of the operands' Venn diagram (bit i set =
    in operand i; with ``target``, bit ``len(sources)`` = in that audience now), how many
    customers are in exactly those sets. One pass over every operand's members."""
    parts: list[str] = []
    params: list[Any] = []
    for position, source in enumerate(sources):
        sql, more = operand_sql(source, now=now)
        parts.append(f"SELECT customer_id, {1 << position} AS bit FROM ({sql}) AS o{position}")
        params += more
    if target is not None:
        parts.append(
            f"SELECT customer_id, {1 << len(sources)} AS bit FROM audiences_membership "
            "WHERE audience_id = %s"
        )
        params.append(target)
    sql = (
        "SELECT g.mask, COUNT(*) FROM (SELECT b.customer_id, SUM(DISTINCT b.bit) AS mask "
        f"FROM ({' UNION ALL '.join(parts)}) AS b GROUP BY b.customer_id) AS g GROUP BY g.mask"
    )
    return sql, params
