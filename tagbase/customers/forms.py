"""The search and filter panel of Customers → All customers.

Field names are the public filter names of ``customers.queries.FILTERS``. The form only lays
the fields out; whether a value is usable is decided by ``customers.queries`` (one place for the
rules), and a value it refuses becomes an error on that field instead of a failed page.
"""

from __future__ import annotations

from typing import Any

from django import forms

from tagbase.customers.queries import InvalidFilter, customer_list

_ANY = ("", "Any")
_PRESENT = [_ANY, ("yes", "Valid"), ("no", "Missing or invalid")]


def _number(**attrs: Any) -> forms.TextInput:
    # A text input with a numeric keyboard, not type=number: a number input silently blanks a
    # value it cannot parse, and the user should see the value the error message is about.
    return forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off", **attrs})


class CustomerFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=320, label="Search")
    gender = forms.CharField(
        required=False,
        widget=forms.Select(choices=[_ANY, ("m", "Male"), ("f", "Female"), ("unknown", "Unknown")]),
    )
    city = forms.CharField(required=False, max_length=100, label="City contains")
    has_phone = forms.CharField(
        required=False, label="Phone", widget=forms.Select(choices=_PRESENT)
    )
    has_email = forms.CharField(
        required=False, label="E-mail", widget=forms.Select(choices=_PRESENT)
    )
    receipts_min = forms.CharField(
        required=False, label="Receipts from", widget=_number(inputmode="numeric")
    )
    receipts_max = forms.CharField(
        required=False, label="Receipts to", widget=_number(inputmode="numeric")
    )
    total_min = forms.CharField(required=False, label="Total spent from", widget=_number())
    total_max = forms.CharField(required=False, label="Total spent to", widget=_number())
    last_receipt_days_max = forms.CharField(
        required=False, label="Last receipt within (days)", widget=_number(inputmode="numeric")
    )
    registered_from = forms.CharField(
        required=False, label="Registered from", widget=forms.DateInput(attrs={"type": "date"})
    )
    registered_to = forms.CharField(
        required=False, label="Registered to", widget=forms.DateInput(attrs={"type": "date"})
    )

    FILTER_FIELDS = (
        "gender",
        "city",
        "has_phone",
        "has_email",
        "receipts_min",
        "receipts_max",
        "total_min",
        "total_max",
        "last_receipt_days_max",
        "registered_from",
        "registered_to",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in self.FILTER_FIELDS:
            value = (data.get(name) or "").strip()
            if not value:
                continue
            try:
                customer_list(filters={name: value})  # lazy: builds the condition, runs no query
            except InvalidFilter as exc:
                self.add_error(name, exc.message)
        return data

    def search(self) -> str:
        """The search text ("" when it was refused, e.g. too long)."""
        self.is_valid()
        return (self.cleaned_data.get("q") or "").strip()

    def active_filters(self) -> dict[str, str]:
        """The filters that have a usable value (invalid ones are left out, and reported)."""
        self.is_valid()
        return {
            name: value.strip()
            for name in self.FILTER_FIELDS
            if (value := self.cleaned_data.get(name) or "").strip()
        }
