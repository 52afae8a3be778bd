"""Forms of the import pages. They parse input only: what a request may ask for (an audience
that exists, a name that is allowed, remove only from an existing audience) is decided by
``services.validate_request``, whose errors the view puts back on the field they name."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat

from tagbase.audiences.queries import audience_list
from tagbase.imports.models import ImportAction, ImportMode, ImportStatus
from tagbase.imports.services import ImportRequest
from tagbase.lib.identifiers import ID_TYPE_LABELS, IdType

# The original product's wording for the two modes.
MODE_CHOICES = [
    (ImportMode.SINGLE.value, "Set one target audience to all customers from this file"),
    (ImportMode.PER_ROW.value, "Assign each customer the target audience specified in the file"),
]
ACTION_CHOICES = [(ImportAction.ADD.value, "Add"), (ImportAction.REMOVE.value, "Remove")]
ID_TYPE_CHOICES = [(str(t), label) for t, label in ID_TYPE_LABELS.items()]
ENCODING_CHOICES = [
    ("auto", "Detect automatically"),
    ("utf-8", "UTF-8"),
    ("cp1251", "Windows-1251"),
    ("utf-16", "UTF-16 (with byte-order mark)"),
]
DELIMITER_CHOICES = [
    ("auto", "Detect automatically"),
    (";", "Semicolon ( ; )"),
    (",", "Comma ( , )"),
    ("tab", "Tab"),
]
# A service error names the input it is about; these are the form fields that show it.
SERVICE_FIELDS = {"mode", "action", "id_type", "encoding", "delimiter", "file"}

# Status filter of the list: the stored statuses plus "running" for the three working ones.
RUNNING = (ImportStatus.QUEUED, ImportStatus.VALIDATING, ImportStatus.APPLYING)
STATUS_FILTER_CHOICES = [("", "Any status"), ("running", "Running (queued, validating, applying)")]
STATUS_FILTER_CHOICES += [(s.value, s.label) for s in ImportStatus if s not in RUNNING]


def _choice_error(what: str, choices: list[tuple[str, str]]) -> dict[str, str]:
    names = ", ".join(label for _, label in choices)
    return {"invalid_choice": f"Choose the {what}: {names}."}


class AudienceChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Any) -> str:
        return f"{obj.name} ({obj.member_count:,})"


class ImportForm(forms.Form):
    """What to import and how: mode, action, identifier type, target, file, reading options."""

    mode = forms.ChoiceField(
        label="Import mode",
        choices=MODE_CHOICES,
        initial=ImportMode.SINGLE.value,
        widget=forms.RadioSelect,
        error_messages=_choice_error("import mode", MODE_CHOICES),
    )
    action = forms.ChoiceField(
        label="Action",
        choices=ACTION_CHOICES,
        initial=ImportAction.ADD.value,
        widget=forms.RadioSelect,
        help_text="In mode 2 a line may say + or - in a third column; this is for lines that "
        "do not.",
        error_messages=_choice_error("action", ACTION_CHOICES),
    )
    id_type = forms.ChoiceField(
        label="Identifier type",
        choices=ID_TYPE_CHOICES,
        initial=IdType.SC_ID.value,
        help_text="What the first column of the file holds.",
        error_messages=_choice_error("identifier type", ID_TYPE_CHOICES),
    )
    audience = AudienceChoiceField(
        label="Existing audience",
        queryset=audience_list(),
        required=False,
        empty_label="— Choose an existing audience —",
        error_messages={"invalid_choice": "That audience no longer exists; choose another."},
    )
    audience_name = forms.CharField(
        label="…or create a new audience named",
        required=False,
        max_length=400,
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "New audience name"}),
        help_text="Created when the import is applied. Nothing is created in remove mode.",
    )
    file = forms.FileField(
        label="File",
        widget=forms.FileInput(attrs={"accept": ".csv,.txt,text/csv,text/plain"}),
        error_messages={
            "required": "Choose the file to import.",
            "empty": "The file is empty (0 bytes). Choose the file that holds the identifiers.",
        },
    )
    encoding = forms.ChoiceField(
        label="Encoding",
        choices=ENCODING_CHOICES,
        initial="auto",
        error_messages=_choice_error("encoding", ENCODING_CHOICES),
    )
    delimiter = forms.ChoiceField(
        label="Delimiter",
        choices=DELIMITER_CHOICES,
        initial="auto",
        error_messages=_choice_error("delimiter", DELIMITER_CHOICES),
    )
    dry_run = forms.BooleanField(
        label="Preview before importing (dry run)",
        required=False,
        initial=True,
        help_text="Read the file and show what would change; nothing changes until you press "
        "Import on the report.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limit = filesizeformat(settings.TAGBASE_IMPORT_MAX_BYTES)
        self.fields["file"].help_text = f"CSV or plain text, one customer per line; up to {limit}."

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("mode") != ImportMode.SINGLE:
            # Mode 2 takes the audience from each row; what the hidden fields hold is ignored.
            data["audience"], data["audience_name"] = None, ""
            return data
        name = (data.get("audience_name") or "").strip()
        data["audience_name"] = name
        if "audience" in self.errors:
            return data
        if data.get("audience") and name:
            self.add_error(
                "audience_name",
                "Choose an existing audience or type a new name, not both: clear one of them.",
            )
        elif not data.get("audience") and not name:
            self.add_error("audience", "Choose an audience or type the name of a new one.")
        return data

    def to_request(self) -> ImportRequest:
        data = self.cleaned_data
        audience = data.get("audience")
        return ImportRequest(
            mode=data["mode"],
            action=data["action"],
            id_type=data["id_type"],
            audience_id=audience.pk if audience else None,
            audience_name=data.get("audience_name") or "",
            dry_run=bool(data.get("dry_run")),
            encoding=data["encoding"],
            delimiter=data["delimiter"],
        )

    def field_for(self, service_field: str | None) -> str | None:
        """The form field that shows a service error about ``service_field`` (None: the form)."""
        if service_field == "audience":
            return "audience_name" if self.cleaned_data.get("audience_name") else "audience"
        return service_field if service_field in SERVICE_FIELDS else None


class ImportListForm(forms.Form):
    """The status filter of the import list; anything unknown shows every import."""

    status = forms.ChoiceField(required=False, choices=STATUS_FILTER_CHOICES, label="Status")

    def statuses(self) -> list[str]:
        value = self.cleaned_data.get("status", "") if self.is_valid() else ""
        if value == "running":
            return [s.value for s in RUNNING]
        return [value] if value else []
