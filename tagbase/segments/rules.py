"""The rule tree: validation with errors that name the place (docs/segments.md#the-rule-tree).

``validate`` returns a cleaned copy — values converted to their types (dates, decimals), strings
trimmed — or raises ``RuleError`` whose ``field`` is a path such as ``rules[2].rules[0].value``.
References (audiences, segments) are checked against the database by ``check_references``.
"""

from __future__ import annotations

import math
import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from tagbase.segments.catalogue import FIELDS, OPERATORS, Field

MAX_DEPTH = 6
MAX_CONDITIONS = 100
MAX_LIST = 1000
MAX_AUDIENCES = 100
MAX_TEXT = 200
MAX_DAYS = 36_500
MAX_WINDOW = 3_650
_KEY = re.compile(r"^[A-Za-z0-9_.\-]{1,100}$")
_EVENT = re.compile(r"^\S(.{0,98}\S)?$")
_GROUP_KEYS = {"op", "rules", "negate"}


class RuleError(ValueError):
    code = "invalid_rule"

    def __init__(self, message: str, field: str | None = None, code: str | None = None) -> None:
        self.message = f"{field}: {message}" if field else message
        super().__init__(self.message)
        self.field = field
        self.detail = message
        if code:
            self.code = code


def empty_rule() -> dict[str, Any]:
    return {"op": "and", "negate": False, "rules": []}


def validate(tree: Any) -> dict[str, Any]:
    """The cleaned tree, or RuleError naming where the problem is."""
    counter = [0]
    return _group(tree, "", 1, counter)


def _path(base: str, key: str) -> str:
    return f"{base}.{key}" if base else key


def _group(node: Any, path: str, depth: int, counter: list[int]) -> dict[str, Any]:
    where = path or None
    if not isinstance(node, dict):
        raise RuleError("must be a group: an object with 'op' and 'rules'", where)
    extra = set(node) - _GROUP_KEYS
    if extra:
        raise RuleError(f"unknown key {sorted(extra)[0]!r} in a group", where)
    if depth > MAX_DEPTH:
        raise RuleError(f"groups nest at most {MAX_DEPTH} levels deep", where, "too_deep")
    op = node.get("op", "and")
    if op not in ("and", "or"):
        raise RuleError(f"must be 'and' or 'or', not {op!r}", _path(path, "op"))
    negate = node.get("negate", False)
    if not isinstance(negate, bool):
        raise RuleError("must be true or false", _path(path, "negate"))
    rules = node.get("rules", [])
    if not isinstance(rules, list):
        raise RuleError("must be a list of conditions and groups", _path(path, "rules"))
    cleaned = []
    for index, child in enumerate(rules):
        child_path = f"{_path(path, 'rules')}[{index}]"
        if isinstance(child, dict) and ("op" in child or "rules" in child) and "field" not in child:
            cleaned.append(_group(child, child_path, depth + 1, counter))
        else:
            counter[0] += 1
            if counter[0] > MAX_CONDITIONS:
                raise RuleError(
                    f"a rule has at most {MAX_CONDITIONS} conditions", child_path, "too_many"
                )
            cleaned.append(_condition(child, child_path))
    return {"op": op, "negate": negate, "rules": cleaned}


def _condition(node: Any, path: str) -> dict[str, Any]:
    if not isinstance(node, dict):
        raise RuleError("must be a condition (an object with 'field') or a group", path)
    name = node.get("field")
    if not isinstance(name, str) or name not in FIELDS:
        raise RuleError(
            f"unknown field {name!r}; see GET /api/v1/segments/fields", _path(path, "field")
        )
    f = FIELDS[name]
    allowed = {"field", "operator", "value", *f.params}
    extra = set(node) - allowed
    if extra:
        raise RuleError(f"unknown key {sorted(extra)[0]!r} for {name}", path)
    operator = node.get("operator")
    if operator not in f.operators:
        choices = ", ".join(f.operators)
        raise RuleError(
            f"{operator!r} is not an operator of {name}; use one of: {choices}",
            _path(path, "operator"),
        )
    cleaned: dict[str, Any] = {"field": name, "operator": operator}
    for param in f.params:
        cleaned[param] = _param(f, param, node.get(param), _path(path, param))
    arity = OPERATORS[f.type][operator].arity
    value_path = _path(path, "value")
    if arity == "none":
        if node.get("value") not in (None, "", []):
            raise RuleError(f"{operator} takes no value", value_path)
        return cleaned
    if "value" not in node or node["value"] is None:
        raise RuleError("a value is required", value_path, "missing")
    cleaned["value"] = _value(f, operator, arity, node["value"], value_path)
    return cleaned


def _param(f: Field, param: str, value: Any, path: str) -> Any:
    if param == "key":
        if not isinstance(value, str) or not _KEY.fullmatch(value):
            raise RuleError(
                "must be an attribute key: 1-100 letters, digits, '_', '-' or '.'", path
            )
        return value
    if param == "event":
        if not isinstance(value, str) or not _EVENT.match(value.strip()):
            raise RuleError("must be an event name (1-100 characters)", path)
        return value.strip()
    if param == "days":
        return _whole(value, path, 1, MAX_WINDOW)
    raise RuleError(f"unknown parameter {param}", path)  # pragma: no cover


def _value(f: Field, operator: str, arity: str, value: Any, path: str) -> Any:
    if arity == "days":
        return _whole(value, path, 0, MAX_DAYS)
    if arity == "two":
        if not isinstance(value, list) or len(value) != 2:
            raise RuleError("must be a list of two values [low, high]", path)
        low = _scalar(f, value[0], f"{path}[0]")
        high = _scalar(f, value[1], f"{path}[1]")
        if low > high:
            raise RuleError("the first value must not be greater than the second", path)
        return [low, high]
    if arity == "list":
        limit = MAX_AUDIENCES if f.type == "audiences" else MAX_LIST
        if not isinstance(value, list) or not value:
            raise RuleError("must be a non-empty list", path)
        if len(value) > limit:
            raise RuleError(f"must have at most {limit} items", path)
        items = [_scalar(f, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return sorted(set(items), key=str)
    return _scalar(f, value, path)


def _scalar(f: Field, value: Any, path: str) -> Any:
    kind = f.type
    if kind in ("string",):
        if not isinstance(value, str) or not value.strip():
            raise RuleError("must be a non-empty text", path)
        text = value.strip()
        if len(text) > MAX_TEXT:
            raise RuleError(f"must be at most {MAX_TEXT} characters", path)
        return text
    if kind == "number":
        if f.whole:
            low = f.minimum if f.minimum is not None else -(10**12)
            high = f.maximum if f.maximum is not None else 10**12
            return _whole(value, path, low, high)
        return _decimal(value, path, places=None)
    if kind == "money":
        return _decimal(value, path, places=2)
    if kind == "date":
        if not isinstance(value, str):
            raise RuleError(f"must be a date YYYY-MM-DD, not {value!r}", path)
        try:
            day = date.fromisoformat(value.strip())
        except ValueError:
            raise RuleError(f"must be a date YYYY-MM-DD, not {value!r}", path) from None
        if not 1000 <= day.year <= 9998 or len(value.strip()) != 10:
            raise RuleError(f"must be a date YYYY-MM-DD between 1000 and 9998, not {value!r}", path)
        return day
    if kind == "boolean":
        if not isinstance(value, bool):
            raise RuleError(f"must be true or false, not {value!r}", path)
        return value
    if kind == "choice":
        allowed = [v for v, _ in f.choices]
        if value not in allowed:
            raise RuleError(f"must be one of {', '.join(allowed)}, not {value!r}", path)
        return value
    if kind in ("audience", "audiences", "segment"):
        what = "a segment" if kind == "segment" else "an audience"
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RuleError(f"must be {what} id (a whole number), not {value!r}", path)
        return value
    raise RuleError(f"unsupported type {kind}", path)  # pragma: no cover


def _whole(value: Any, path: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RuleError(f"must be a whole number, not {value!r}", path)
    if isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            raise RuleError(f"must be a whole number, not {value!r}", path)
        value = int(value)
    if not low <= value <= high:
        raise RuleError(f"must be between {low} and {high}, not {value}", path)
    return int(value)


def _decimal(value: Any, path: str, *, places: int | None) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise RuleError(f"must be a number, not {value!r}", path)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise RuleError(f"must be a number, not {value!r}", path) from None
    if not number.is_finite():
        raise RuleError(f"must be a finite number, not {value!r}", path)
    if abs(number) >= Decimal(10) ** 14:
        raise RuleError("must be less than 10^14 in size", path)
    exponent = number.as_tuple().exponent
    if places is not None and isinstance(exponent, int) and -exponent > places:
        raise RuleError(f"must have at most {places} decimals, not {value!r}", path)
    if isinstance(exponent, int) and -exponent > 10:
        raise RuleError(f"must have at most 10 decimals, not {value!r}", path)
    return number


def to_json(tree: dict[str, Any]) -> dict[str, Any]:
    """A cleaned tree as JSON-storable data (dates as ISO text, decimals as strings)."""

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, date):
            return v.isoformat()
        if isinstance(v, Decimal):
            return str(v)
        return v

    return conv(tree)  # type: ignore[no-any-return]


def conditions(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """Every condition of a tree, depth first."""
    found: list[dict[str, Any]] = []
    for node in tree.get("rules", []):
        if "field" in node:
            found.append(node)
        else:
            found.extend(conditions(node))
    return found


def referenced(tree: dict[str, Any], kind: str) -> set[int]:
    """Ids of the audiences ('audience') or segments ('segment') a tree refers to."""
    ids: set[int] = set()
    for cond in conditions(tree):
        if kind == "segment" and cond["field"] == "segment":
            ids.add(cond["value"])
        if kind == "audience" and cond["field"] == "audience":
            ids.add(cond["value"])
        if kind == "audience" and cond["field"] == "audiences":
            ids.update(cond["value"])
    return ids
