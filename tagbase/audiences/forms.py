"""Forms of the target-audience pages: they parse input only; the rules live in the services
(names) and in ``tagbase.lib.identifiers`` (identifier values)."""

from __future__ import annotations

import re

from django import forms
from django.conf import settings

from tagbase.audiences.exports import EXPORT_FORMATS
from tagbase.audiences.models import MAX_TTL_DAYS
from tagbase.lib.identifiers import ID_TYPE_LABELS, IdType

ID_TYPE_CHOICES = [(str(t), label) for t, label in ID_TYPE_LABELS.items()]
SORT_CHOICES = ["name", "-name", "count", "-count", "date", "-date"]

# Identifiers in a paste are separated by line breaks, ';' and ','. White space separates them
# too, but only for the types whose values never contain a space (a phone "+7 912 345-67-89",
# a card "1234 5678" or a partner id may).
_HARD_SEPARATORS = re.compile(r"[\r\n;,]+")
_SPACE_SPLIT_TYPES = {IdType.SC_ID, IdType.EMAIL}
# "1 234 567" is one number that a spreadsheet formatted with digit groups, not three ids:
# it stays whole so that the normaliser rejects it with its hint instead of matching 1, 234, 567.
_DIGIT_GROUPS = re.compile(r"[0-9]{1,3}(?: [0-9]{3})+")


def split_identifiers(text: str, id_type: IdType) -> list[str]:
    """The values of a paste in order, empty pieces dropped; duplicates are kept (the resolver
    counts them)."""
    values: list[str] = []
    for piece in _HARD_SEPARATORS.split(text):
        piece = piece.strip()
        if not piece:
            continue
        if id_type in _SPACE_SPLIT_TYPES and not _DIGIT_GROUPS.fullmatch(piece):
            values.extend(piece.split())
        else:
            values.append(piece)
    return values


def ttl_days_field(label: str, help_text: str, empty: str = "never") -> forms.IntegerField:
    """A time-to-live in whole days; ``empty`` says what leaving it blank means (docs/expiry.md)."""
    return forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_TTL_DAYS,
        label=label,
        help_text=help_text,
        widget=forms.NumberInput(attrs={"inputmode": "numeric", "placeholder": empty}),
    )


class AudienceForm(forms.Form):
    """Name and description of a new audience, and its members' default time-to-live; the
    service checks the name."""

    name = forms.CharField(
        max_length=400, strip=False, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )
    description = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 3})
    )
    member_ttl_days = ttl_days_field(
        "Remove members after (days)",
        "Optional. Each add keeps its customers this many days; empty: until removed.",
    )


class MemberTtlForm(forms.Form):
    """The audience's default time-to-live of the memberships its adds set."""

    member_ttl_days = ttl_days_field(
        "Remove members after (days)", "For adds from now on; empty: members stay until removed."
    )


class RenameForm(forms.Form):
    name = forms.CharField(
        max_length=400, strip=False, widget=forms.TextInput(attrs={"autocomplete": "off"})
    )


class AudienceListForm(forms.Form):
    """Search and sort of the audience list; anything unknown falls back to the default."""

    q = forms.CharField(required=False, max_length=200)
    sort = forms.ChoiceField(required=False, choices=[(s, s) for s in SORT_CHOICES])

    def values(self) -> tuple[str, str]:
        if self.is_valid():
            return self.cleaned_data["q"].strip(), self.cleaned_data["sort"] or "name"
        return "", "name"


class MembersChangeForm(forms.Form):
    """Add or remove customers named by pasted identifiers of one type."""

    action = forms.ChoiceField(
        choices=[("add", "Add"), ("remove", "Remove")],
        initial="add",
        widget=forms.RadioSelect,
    )
    id_type = forms.ChoiceField(choices=ID_TYPE_CHOICES, initial=IdType.SC_ID, label="Identifier")
    identifiers = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6, "class": "identifiers", "spellcheck": "false"}),
        label="Identifiers",
        help_text="One per line; ';', ',' (and spaces, for IDs and e-mails) also separate.",
    )
    ttl_days = ttl_days_field(
        "Remove after (days)", "Adds only; empty: the audience's default.", "audience default"
    )

    def clean(self) -> dict:
        data = super().clean() or {}
        if "id_type" in data and "identifiers" in data:
            values = split_identifiers(data["identifiers"], IdType(data["id_type"]))
            limit = settings.TAGBASE_MAX_IDS_PER_REQUEST
            if not values:
                self.add_error("identifiers", "Paste at least one identifier.")
            elif len(values) > limit:
                self.add_error(
                    "identifiers",
                    f"You pasted {len(values):,} identifiers; at most {limit:,} are accepted at "
                    "once. Split the list, or use Import audiences for a file.",
                )
            data["values"] = values
        return data


class MemberFindForm(forms.Form):
    """Look up one customer by an identifier and tell whether they are a member."""

    find_type = forms.ChoiceField(choices=ID_TYPE_CHOICES, initial=IdType.SC_ID, label="Type")
    find = forms.CharField(max_length=400, label="Identifier")


class ExportForm(forms.Form):
    """What to export: an identifier type or an ad-platform layout (``format``; ``id_type`` is
    the first version's name, still accepted), and whether to start with a BOM for Excel."""

    format = forms.ChoiceField(required=False, choices=list(EXPORT_FORMATS.items()), label="Export")
    id_type = forms.ChoiceField(required=False, choices=ID_TYPE_CHOICES, label="Identifier")
    bom = forms.BooleanField(required=False, label="For Excel (UTF-8 with BOM)")

    def clean(self) -> dict:
        data = super().clean() or {}
        chosen = data.get("format") or data.get("id_type")
        if not chosen and not self.errors:
            self.add_error("format", "Choose what to export.")
        data["export_format"] = chosen
        return data
