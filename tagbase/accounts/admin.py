"""Django admin for people and tokens only. Customers and audiences are deliberately not
registered: every membership change must go through audiences.services (counts, operations,
ledger), which the admin's generic edit and delete views would bypass."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from tagbase.accounts.models import ApiToken, User


@admin.register(User)
class TagbaseUserAdmin(UserAdmin):
    list_display = ("username", "email", "role", "is_active", "last_login")
    list_filter = ("role", "is_active")
    fieldsets = (*(UserAdmin.fieldsets or ()), ("Tagbase", {"fields": ("role",)}))


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("name", "key_prefix", "scopes", "created_at", "last_used_at", "revoked_at")
    readonly_fields = ("key_prefix", "key_hash", "created_at", "last_used_at")

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        # Secrets are shown once at creation; create tokens with the service, not the admin.
        return False
