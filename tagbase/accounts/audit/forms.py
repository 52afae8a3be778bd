"""The filter panel of Admin → Audit log. The form lays the fields out; whether a value is
usable is decided by ``audit.make_filter`` (the one place for the rules, shared with the API
and the CLI), and a value it refuses becomes an error on that field."""

from __future__ import annotations

from typing import Any

from django import forms

from tagbase.accounts import audit
from tagbase.accounts.models import ApiToken, User

_ANY = ("", "Any")
FILTER_FIELDS = ("actor", "action", "target_type", "target_id", "since", "until")


class AuditFilterForm(forms.Form):
    actor = forms.CharField(
        required=False,
        max_length=150,
        label="Actor",
        help_text="A user name, token:<name>, or cli:<OS user>",
        widget=forms.TextInput(attrs={"list": "audit-actors", "autocomplete": "off"}),
    )
    action = forms.CharField(required=False, label="Action")
    target_type = forms.CharField(required=False, label="Target type")
    target_id = forms.IntegerField(
        required=False, min_value=1, max_value=2**63 - 1, label="Target id"
    )
    since = forms.CharField(
        required=False, label="From", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = forms.CharField(
        required=False, label="To (inclusive)", widget=forms.DateInput(attrs={"type": "date"})
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].widget = forms.Select(choices=[_ANY, *audit.action_choices()])
        types = [(value, f"{label} ({value})") for value, label in audit.TARGET_TYPES.items()]
        self.fields["target_type"].widget = forms.Select(choices=[_ANY, *types])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        texts = {name: data.get(name) or "" for name in FILTER_FIELDS if name != "target_id"}
        target_id = data.get("target_id")
        self.where = audit.AuditFilter()
        # A refused value is reported on its field and left out; the others still filter.
        for _ in FILTER_FIELDS:
            try:
                self.where = audit.make_filter(target_id=target_id, **texts)
                break
            except audit.InvalidAuditFilter as exc:
                self.add_error(exc.field, exc.message)
                texts[exc.field] = ""
        return data

    def audit_filter(self) -> audit.AuditFilter:
        """The usable filters (refused values are left out, and reported on their field)."""
        self.is_valid()
        return getattr(self, "where", audit.AuditFilter())

    def active_count(self) -> int:
        self.is_valid()
        return sum(1 for name in FILTER_FIELDS if self.cleaned_data.get(name) not in (None, ""))


def known_actors() -> list[str]:
    """Suggestions for the actor field: every user and every token (both small tables)."""
    users = list(User.objects.order_by("username").values_list("username", flat=True)[:500])
    tokens = ApiToken.objects.order_by("name").values_list("name", flat=True).distinct()[:500]
    return users + [f"token:{name}" for name in tokens]
