"""Forms of the set-operation pages: they parse input only. The expression is checked by the
services (``expressions.parse``, ``services.resolve``), names by ``tagbase.lib.names`` through
the audience services."""

from __future__ import annotations

import secrets
from datetime import date, datetime, time
from typing import Any

from django import forms
from django.utils import timezone

from tagbase.lib.identifiers import ID_TYPE_LABELS, IdType
from tagbase.sets.expressions import OPERATORS
from tagbase.sets.services import day_moment

ID_TYPE_CHOICES = [(str(t), label) for t, label in ID_TYPE_LABELS.items()]
OPERATOR_CHOICES = [
    ("union", f"{OPERATORS['union']} union"),
    ("intersect", f"{OPERATORS['intersect']} intersection"),
    ("difference", f"{OPERATORS['difference']} minus"),
]
TARGET_CHOICES = [
    ("new", "A new audience"),
    ("add", "Add the result to an audience"),
    ("replace", "Replace the members of an audience with the result"),
]


def operand_choices(audiences: list[tuple[int, str]], segments: list[tuple[int, str]]) -> list[Any]:
    """Grouped choices ``audience:<id>`` / ``segment:<id>`` for an operand picker."""
    return [
        ("", "Choose…"),
        ("Target audiences", [(f"audience:{pk}", name) for pk, name in audiences]),
        ("User segments", [(f"segment:{pk}", name) for pk, name in segments]),
    ]


class CombineForm(forms.Form):
    """A, operator, B, and optionally a second operator and C: ``(A op B) op C``. Then the
    target: a new audience (named here), or an existing one to add the result to or to replace
    with it. ``token`` is made when the page is shown and sent as the idempotency key, so a
    second submit of the same page returns the first job instead of running again."""

    first = forms.ChoiceField(label="A")
    op1 = forms.ChoiceField(choices=OPERATOR_CHOICES, initial="union", label="Operator")
    second = forms.ChoiceField(label="B")
    op2 = forms.ChoiceField(
        choices=[("", "— no third operand —"), *OPERATOR_CHOICES], required=False, label="Then"
    )
    third = forms.ChoiceField(required=False, label="C")
    target = forms.ChoiceField(
        choices=TARGET_CHOICES, initial="new", widget=forms.RadioSelect, label="Put the result in"
    )
    audience = forms.TypedChoiceField(
        coerce=int, required=False, empty_value=None, label="Audience"
    )
    new_audience_name = forms.CharField(
        required=False,
        max_length=400,
        strip=False,
        label="New audience name",
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "Name of the result"}),
    )
    token = forms.CharField(max_length=200, widget=forms.HiddenInput)

    def __init__(
        self,
        *args: Any,
        audiences: list[tuple[int, str]],
        segments: list[tuple[int, str]],
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("initial", {}).setdefault("token", secrets.token_urlsafe(18))
        super().__init__(*args, **kwargs)
        choices = operand_choices(audiences, segments)
        for name in ("first", "second", "third"):
            self.fields[name].choices = choices  # type: ignore[attr-defined]
        self.fields["audience"].choices = [("", "Choose an audience…"), *audiences]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if bool(data.get("op2")) != bool(data.get("third")):
            field = "third" if data.get("op2") else "op2"
            self.add_error(field, "Choose both the second operator and C, or neither.")
        new_name = (data.get("new_audience_name") or "").strip()
        data["new_audience_name"] = new_name or None
        if data.get("target") == "new":
            data["audience"] = None
            if not new_name:
                self.add_error("new_audience_name", "Type the name of the new audience.")
        elif data.get("target") in ("add", "replace"):
            data["new_audience_name"] = None
            if data.get("audience") is None and "audience" not in self.errors:
                self.add_error("audience", "Choose the audience to put the result in.")
        return data

    def expression(self) -> dict[str, Any]:
        """The expression tree of the cleaned form: ``A op B`` or ``(A op B) op C``."""
        data = self.cleaned_data
        tree: dict[str, Any] = {
            "op": data["op1"],
            "left": _operand(data["first"]),
            "right": _operand(data["second"]),
        }
        if data.get("op2"):
            tree = {"op": data["op2"], "left": tree, "right": _operand(data["third"])}
        return tree

    @property
    def mode(self) -> str:
        return "replace" if self.cleaned_data.get("target") == "replace" else "add"


def _operand(value: str) -> dict[str, int]:
    kind, _, pk = value.partition(":")
    return {kind: int(pk)}


class AsOfForm(forms.Form):
    """The moment of "Members on a date": a day, and optionally a time of that day (without
    it, the end of the day, or now while the day lasts). ``moment`` raises ``SetError`` for
    a day that has not begun."""

    date = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), label="Date")
    time = forms.TimeField(
        required=False, widget=forms.TimeInput(attrs={"type": "time"}), label="Time (optional)"
    )

    def moment(self) -> datetime:
        day: date = self.cleaned_data["date"]
        at: time | None = self.cleaned_data.get("time")
        if at is None:
            return day_moment(day, field="date")
        return timezone.make_aware(datetime.combine(day, at))


class ExportForm(forms.Form):
    id_type = forms.ChoiceField(choices=ID_TYPE_CHOICES, initial=IdType.SC_ID, label="Identifier")
