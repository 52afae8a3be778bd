"""The rule tree: every invalid rule gets a clear error naming its place; every field and
operator compiles and runs on this engine; sentences read like the original product."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from tagbase.segments.catalogue import FIELDS, OPERATORS
from tagbase.segments.compiler import describe, members, metrics
from tagbase.segments.rules import RuleError, validate
from tagbase.testing import make_customer


def _value_for(field, arity):  # type: ignore[no-untyped-def]
    f = FIELDS[field]
    one = {
        "string": "Moscow",
        "number": 3,
        "money": "10.50",
        "date": "2024-02-29",
        "boolean": True,
        "choice": f.choices[0][0] if f.choices else None,
        "audience": 1,
        "audiences": 1,
        "segment": 1,
    }[f.type]
    if arity == "two":
        return [one, one] if f.type != "date" else ["2024-01-01", "2024-12-31"]
    if arity == "list":
        return [one]
    if arity == "days":
        return 7
    if arity == "none":
        return None
    return one


def _condition(field, operator):  # type: ignore[no-untyped-def]
    f = FIELDS[field]
    cond = {"field": field, "operator": operator}
    arity = OPERATORS[f.type][operator].arity
    value = _value_for(field, arity)
    if value is not None:
        cond["value"] = value
    for param in f.params:
        cond[param] = {"key": "level", "event": "app_login", "days": 30}[param]
    return cond


ALL = [(field, op) for field, f in FIELDS.items() for op in f.operators]


@pytest.mark.django_db
@pytest.mark.parametrize(("field", "operator"), ALL)
def test_every_field_and_operator_compiles_runs_and_reads_as_a_sentence(field, operator):
    make_customer(city="Moscow", birth_date=date(1990, 2, 28), attributes={"level": 3})
    tree = validate({"op": "and", "rules": [_condition(field, operator)]})
    found = set(members(tree).values_list("sc_id", flat=True))
    negated = set(members({**tree, "negate": True}).values_list("sc_id", flat=True))
    assert found.isdisjoint(negated)
    assert len(found | negated) == 1
    assert describe(tree, {"audience": {}, "segment": {}})


@pytest.mark.parametrize(
    ("tree", "field", "words"),
    [
        ([], None, "must be a group"),
        ({"op": "xor", "rules": []}, "op", "'and' or 'or'"),
        ({"op": "and", "rules": {}}, "rules", "must be a list"),
        ({"op": "and", "rules": [], "extra": 1}, None, "unknown key 'extra'"),
        ({"op": "and", "negate": "yes", "rules": []}, "negate", "true or false"),
        ({"rules": [{"field": "nope", "operator": "eq"}]}, "rules[0].field", "unknown field"),
        (
            {"rules": [{"field": "customer.age", "operator": "contains", "value": 1}]},
            "rules[0].operator",
            "not an operator of customer.age",
        ),
        (
            {"rules": [{"field": "customer.age", "operator": "gte", "value": "abc"}]},
            "rules[0].value",
            "must be a whole number, not 'abc'",
        ),
        (
            {"rules": [{"field": "customer.age", "operator": "gte", "value": 2.5}]},
            "rules[0].value",
            "whole number",
        ),
        (
            {"rules": [{"field": "customer.age", "operator": "gte"}]},
            "rules[0].value",
            "a value is required",
        ),
        (
            {"rules": [{"field": "customer.age", "operator": "between", "value": [5, 1]}]},
            "rules[0].value",
            "must not be greater",
        ),
        (
            {
                "rules": [
                    {
                        "op": "or",
                        "rules": [
                            {
                                "field": "customer.birth_date",
                                "operator": "before",
                                "value": "2024-02-30",
                            }
                        ],
                    }
                ]
            },
            "rules[0].rules[0].value",
            "must be a date YYYY-MM-DD",
        ),
        (
            {"rules": [{"field": "receipts.total_amount", "operator": "gt", "value": "1.234"}]},
            "rules[0].value",
            "at most 2 decimals",
        ),
        (
            {"rules": [{"field": "customer.city", "operator": "eq", "value": "   "}]},
            "rules[0].value",
            "non-empty text",
        ),
        (
            {"rules": [{"field": "customer.city", "operator": "is_empty", "value": "x"}]},
            "rules[0].value",
            "takes no value",
        ),
        (
            {"rules": [{"field": "customer.gender", "operator": "is", "value": "x"}]},
            "rules[0].value",
            "must be one of m, f, unknown",
        ),
        (
            {"rules": [{"field": "events.count", "operator": "gte", "value": 3, "days": 30}]},
            "rules[0].event",
            "event name",
        ),
        (
            {
                "rules": [
                    {
                        "field": "events.count",
                        "operator": "gte",
                        "value": 3,
                        "event": "x",
                        "days": 0,
                    }
                ]
            },
            "rules[0].days",
            "between 1 and 3650",
        ),
        (
            {
                "rules": [
                    {"field": "attribute.string", "operator": "eq", "value": "a", "key": "bad key!"}
                ]
            },
            "rules[0].key",
            "attribute key",
        ),
        (  # "$" alone would let a final newline through
            {
                "rules": [
                    {"field": "attribute.string", "operator": "eq", "value": "a", "key": "abc\n"}
                ]
            },
            "rules[0].key",
            "attribute key",
        ),
        (
            {"rules": [{"field": "audiences", "operator": "in_any", "value": []}]},
            "rules[0].value",
            "non-empty list",
        ),
        (
            {"rules": [{"field": "audience", "operator": "in", "value": True}]},
            "rules[0].value",
            "an audience id",
        ),
        (
            {"rules": [{"field": "customer.age", "operator": "gte", "value": 1, "days": 3}]},
            "rules[0]",
            "unknown key 'days'",
        ),
    ],
)
def test_an_invalid_rule_is_refused_with_a_message_naming_its_place(tree, field, words):
    with pytest.raises(RuleError) as caught:
        validate(tree)
    assert caught.value.field == field
    assert words in caught.value.message
    if field:
        assert caught.value.message.startswith(f"{field}: ")


def test_groups_nest_at_most_six_deep_and_a_rule_has_at_most_100_conditions():
    tree: dict = {"op": "and", "rules": []}
    node = tree
    for _ in range(5):
        child: dict = {"op": "or", "rules": []}
        node["rules"].append(child)
        node = child
    validate(tree)
    node["rules"].append({"op": "and", "rules": []})
    with pytest.raises(RuleError, match="at most 6 levels"):
        validate(tree)
    cond = {"field": "customer.age", "operator": "gte", "value": 1}
    validate({"op": "and", "rules": [cond] * 100})
    with pytest.raises(RuleError, match="at most 100 conditions") as caught:
        validate({"op": "and", "rules": [cond] * 101})
    assert caught.value.field == "rules[100]"


def test_values_are_cleaned_to_their_types():
    tree = validate(
        {
            "rules": [
                {"field": "customer.city", "operator": "eq", "value": "  Moscow "},
                {"field": "customer.birth_date", "operator": "before", "value": "2000-01-31"},
                {"field": "receipts.total_amount", "operator": "gte", "value": 10},
                {"field": "customer.age", "operator": "gte", "value": 30.0},
            ]
        }
    )
    values = [c["value"] for c in tree["rules"]]
    assert values == ["Moscow", date(2000, 1, 31), Decimal("10"), 30]
    assert tree["op"] == "and" and tree["negate"] is False


def test_the_summary_reads_like_the_original_product():
    tree = validate(
        {
            "op": "and",
            "rules": [
                {"field": "customer.age", "operator": "gte", "value": 30},
                {
                    "op": "or",
                    "rules": [
                        {
                            "field": "events.count",
                            "event": "app_login",
                            "days": 30,
                            "operator": "gte",
                            "value": 3,
                        },
                        {"field": "audience", "operator": "in", "value": 7},
                    ],
                },
            ],
        }
    )
    text = describe(tree, {"audience": {7: "VIP"}, "segment": {}})
    assert text == (
        "Customer. Age greater than or equal to 30 and (Event “app_login” times in the last 30 "
        "days greater than or equal to 3 or Is in audience “VIP”)"
    )


@pytest.mark.django_db
def test_an_empty_rule_matches_everyone_and_its_negation_no_one():
    ids = {make_customer().pk for _ in range(3)}
    assert set(members(validate({"rules": []})).values_list("sc_id", flat=True)) == ids
    assert not members(validate({"rules": [], "negate": True})).exists()
    m = metrics(validate({"rules": [], "negate": True}))
    assert (m.customers, m.percent_customers, m.average_receipt) == (0, Decimal("0.00"), None)
