"""What every node kind (trigger or action) has in common: a parameter schema, output ports, and
the error that names the node.

A kind declares its parameters as ``Param``s; ``NodeKind.clean`` checks a node's parameters
against them (required, type, range, choices) and returns a cleaned copy, then calls the kind's
own ``check`` for rules between parameters. Errors are ``GraphError`` with the node id and the
parameter, so the editor can show them on the node.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

from django.utils import timezone
from django.utils.dateparse import parse_datetime


class GraphError(ValueError):
    """A campaign cannot be saved or run as it is. ``node`` and ``field`` say where."""

    code = "invalid_graph"

    def __init__(
        self, message: str, *, node: str | None = None, field: str | None = None, code: str = ""
    ) -> None:
        where = f"node {node!r}" if node else ""
        if node and field:
            where += f", {field}"
        elif field:
            where = field
        self.message = f"{where}: {message}" if where else message
        super().__init__(self.message)
        self.node = node
        self.field = field
        self.detail = message
        if code:
            self.code = code


_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("must be a whole number")
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError("must be a whole number") from None


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str | float | Decimal):
        raise ValueError("must be a number")
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError("must be a number") from None
    if not number.is_finite():
        raise ValueError("must be a number")
    return number


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value.strip()


def _datetime(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a date and time (ISO 8601, e.g. 2030-01-31T09:00:00+03:00)")
    parsed = parse_datetime(value.strip())
    if parsed is None:
        raise ValueError("must be a date and time (ISO 8601, e.g. 2030-01-31T09:00:00+03:00)")
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed.isoformat()


def _time(value: Any) -> str:
    if not isinstance(value, str) or not _TIME.match(value.strip()):
        raise ValueError("must be a time of day as HH:MM")
    return value.strip()


def _email(value: Any) -> str:
    text = _text(value)
    if not _EMAIL.match(text):
        raise ValueError("must be an e-mail address")
    return text


def _int_list(value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ValueError("must be a non-empty list of whole numbers")
    return [_int(v) for v in value]


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("must be an object")
    return value


def _any(value: Any) -> Any:
    return value


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "int": _int,
    "decimal": lambda v: str(_decimal(v)),
    "text": _text,
    "datetime": _datetime,
    "time": _time,
    "email": _email,
    "int_list": _int_list,
    "object": _object,
    "audience": _int,
    "segment": _int,
    "rules": _any,
}


@dataclass(frozen=True)
class Param:
    """One parameter of a node kind. ``type`` is a key of ``CONVERTERS``; ``audience`` and
    ``segment`` hold ids checked against the database by ``graph.check_references``."""

    name: str
    type: str
    required: bool = True
    label: str = ""
    choices: tuple[str, ...] = ()
    min: int | None = None
    max: int | None = None
    default: Any = None

    def convert(self, value: Any) -> Any:
        converted = CONVERTERS[self.type](value)
        if self.choices and converted not in self.choices:
            raise ValueError("must be one of " + ", ".join(self.choices))
        if self.type == "text" and self.required and not converted:
            raise ValueError("is required")
        number = _decimal(converted) if self.type in ("int", "decimal") else None
        if number is not None and self.min is not None and number < self.min:
            raise ValueError(f"must be at least {self.min}")
        if number is not None and self.max is not None and number > self.max:
            raise ValueError(f"must be at most {self.max}")
        return converted

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "required": self.required}
        for key in ("label", "choices", "min", "max", "default"):
            value = getattr(self, key)
            if value not in (None, "", ()):
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


class NodeKind:
    """Base of every trigger and action kind (see the module docstring). Kinds are used as
    classes: they hold no state."""

    kind: ClassVar[str]
    label: ClassVar[str]
    is_trigger: ClassVar[bool] = False
    params: ClassVar[tuple[Param, ...]] = ()
    ports: ClassVar[tuple[str, ...]] = ("out",)

    @classmethod
    def clean(cls, node_id: str, raw: Any) -> dict[str, Any]:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise GraphError("params must be an object", node=node_id, field="params")
        known = {p.name for p in cls.params}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise GraphError(
                f"{cls.label} has no parameter {unknown[0]!r}", node=node_id, field=unknown[0]
            )
        cleaned: dict[str, Any] = {}
        for param in cls.params:
            value = raw.get(param.name)
            if value is None or value == "":
                if param.required:
                    raise GraphError("is required", node=node_id, field=param.name)
                if param.default is not None:
                    cleaned[param.name] = param.default
                continue
            try:
                cleaned[param.name] = param.convert(value)
            except ValueError as exc:
                raise GraphError(str(exc), node=node_id, field=param.name) from None
        cls.check(node_id, cleaned)
        return cleaned

    @classmethod
    def check(cls, node_id: str, params: dict[str, Any]) -> None:
        """Rules between parameters; raise GraphError. Nothing by default."""

    @classmethod
    def output_ports(cls, params: dict[str, Any]) -> tuple[str, ...]:
        return cls.ports

    @classmethod
    def schema(cls) -> dict[str, Any]:
        return {
            "kind": cls.kind,
            "label": cls.label,
            "trigger": cls.is_trigger,
            "params": [p.describe() for p in cls.params],
            "ports": list(cls.ports),
        }


def as_datetime(text: str) -> datetime:
    parsed = parse_datetime(text)
    assert parsed is not None  # cleaned by Param("datetime") before
    return parsed
