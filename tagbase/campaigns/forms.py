"""Forms of the campaign pages: they parse input only. The graph is validated by the services
(``services.clean_graph``: ``graph.validate`` then ``graph.check_references``), names and the
re-entry interval too.

The editor saves through the REST API (``static/campaigns/editor.js``); ``CampaignForm`` is the
same save without JavaScript: the graph is edited as JSON text.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms

from tagbase.campaigns.services import MAX_REENTRY_DAYS

MAX_GRAPH_BYTES = 1_000_000  # 200 nodes with long templates and rules fit many times over


class GraphField(forms.CharField):
    """The graph as JSON text. Only the JSON syntax is checked here; the services check the
    graph and name the node of an error."""

    widget = forms.Textarea(attrs={"rows": 12, "spellcheck": "false", "class": "graph-json"})

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", "Graph (JSON)")
        super().__init__(strip=False, **kwargs)

    def to_python(self, value: Any) -> Any:
        text: str = super().to_python(value) or ""
        if len(text) > MAX_GRAPH_BYTES:
            raise forms.ValidationError(
                f"The graph is too long ({len(text):,} characters; at most {MAX_GRAPH_BYTES:,})."
            )
        if not text.strip():
            return {"nodes": [], "edges": []}
        try:
            return json.loads(text)
        except ValueError as exc:
            raise forms.ValidationError(f"The graph is not valid JSON: {exc}") from None

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, (dict, list)):
            return json.dumps(value, ensure_ascii=False, indent=1)
        return value


class CampaignForm(forms.Form):
    """Name, description, re-entry interval and graph of a campaign (the editor page)."""

    name = forms.CharField(
        max_length=400,
        strip=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "e.g. Welcome VIPs"}),
    )
    description = forms.CharField(
        required=False, max_length=10_000, widget=forms.Textarea(attrs={"rows": 2})
    )
    reentry_days = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=MAX_REENTRY_DAYS,
        label="Re-entry after (days)",
        help_text="A customer may enter again this many days after entering; 0: any time; "
        "empty: only once, ever.",
        widget=forms.NumberInput(attrs={"step": 1, "placeholder": "only once"}),
    )
    graph = GraphField()


class CampaignListForm(forms.Form):
    q = forms.CharField(required=False, max_length=200)
    active = forms.BooleanField(required=False, label="Only active")

    def query(self) -> tuple[str, bool]:
        if not self.is_valid():
            return "", False
        return self.cleaned_data["q"].strip(), self.cleaned_data["active"]
