"""Forms of the segment pages: they parse input only. The rule itself is validated by the
services (``services.clean_rules``), names by ``tagbase.lib.names`` through the services."""

from __future__ import annotations

import json
import secrets
from typing import Any

from django import forms

from tagbase.lib.identifiers import ID_TYPE_LABELS, IdType
from tagbase.segments.models import JobAction

ID_TYPE_CHOICES = [(str(t), label) for t, label in ID_TYPE_LABELS.items()]
MAX_RULES_BYTES = 200_000  # far above 100 conditions with 1,000-item lists of long texts


class RulesField(forms.CharField):
    """The rule tree as JSON text (what the builder writes into its hidden field). Only the
    JSON syntax is checked here; the services check the tree and name the place of an error."""

    widget = forms.Textarea(attrs={"rows": 8, "spellcheck": "false", "class": "rules-json"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", "Rule (JSON)")
        super().__init__(strip=False, **kwargs)

    def to_python(self, value: Any) -> Any:
        text: str = super().to_python(value) or ""
        if len(text) > MAX_RULES_BYTES:
            raise forms.ValidationError(
                f"The rule is too long ({len(text):,} characters; at most {MAX_RULES_BYTES:,})."
            )
        if not text.strip():
            return {"op": "and", "negate": False, "rules": []}
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"The rule is not valid JSON: {exc}") from None

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False)
        return value


class SegmentForm(forms.Form):
    """Name, description and rule of a segment (the builder page)."""

    name = forms.CharField(
        max_length=400,
        strip=False,
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "placeholder": "e.g. Active in Moscow"}
        ),
    )
    description = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
    rules = RulesField()


class RulesForm(forms.Form):
    """Only the rule: the live count and *Select*."""

    rules = RulesField()


class RenameForm(forms.Form):
    name = forms.CharField(
        max_length=400, strip=False, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )


class DuplicateForm(forms.Form):
    name = forms.CharField(
        required=False,
        max_length=400,
        strip=False,
        label="Name of the copy",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )


class SegmentListForm(forms.Form):
    q = forms.CharField(required=False, max_length=200)

    def query(self) -> str:
        return self.cleaned_data["q"].strip() if self.is_valid() else ""


class ExportForm(forms.Form):
    id_type = forms.ChoiceField(choices=ID_TYPE_CHOICES, initial=IdType.SC_ID, label="Identifier")


class IncludeForm(forms.Form):
    """*Include in a target audience*: add or remove, with an existing audience or (add only) a
    new one named here. ``token`` is made when the dialog is shown and sent as the idempotency
    key, so a second submit of the same dialog returns the first job instead of running again."""

    action = forms.ChoiceField(
        choices=JobAction.choices, initial=JobAction.ADD, widget=forms.RadioSelect
    )
    audience = forms.TypedChoiceField(coerce=int, required=False, empty_value=None)
    new_audience_name = forms.CharField(
        required=False,
        max_length=400,
        strip=False,
        label="Or a new audience",
        widget=forms.TextInput(
            attrs={"autocomplete": "off", "placeholder": "Name of a new audience"}
        ),
    )
    token = forms.CharField(max_length=200, widget=forms.HiddenInput)

    def __init__(self, *args: Any, audiences: list[tuple[int, str]], **kwargs: Any) -> None:
        kwargs.setdefault("initial", {}).setdefault("token", secrets.token_urlsafe(18))
        super().__init__(*args, **kwargs)
        self.fields["audience"].choices = [("", "Choose an audience…"), *audiences]  # type: ignore[attr-defined]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        new_name = (data.get("new_audience_name") or "").strip()
        data["new_audience_name"] = new_name or None
        if "audience" in self.errors:
            return data
        if new_name and data.get("audience") is not None:
            self.add_error("new_audience_name", "Choose an audience or type a new name, not both.")
        elif new_name and data.get("action") == JobAction.REMOVE:
            self.add_error(
                "new_audience_name", "Customers can only be removed from an existing audience."
            )
        elif not new_name and data.get("audience") is None:
            self.add_error("audience", "Choose an audience or type the name of a new one.")
        return data
