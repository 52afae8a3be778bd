"""Admin → Audit log in the UI (mounted at the site root: /audit/…)."""

from django.urls import path

from tagbase.accounts.audit import views

app_name = "audit"
urlpatterns = [
    path("audit/", views.audit_list, name="audit_list"),
    path("audit/export.csv", views.audit_export, name="audit_export"),
]
