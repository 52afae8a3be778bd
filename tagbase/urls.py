"""Mounts each app's pages and the REST API."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from tagbase.accounts.login import AdminLoginForm, LoginView
from tagbase.api import api

# The admin's log-in counts against the same rate limit as the UI's (accounts.ratelimit).
admin.site.login_form = AdminLoginForm

urlpatterns = [
    path("", include("tagbase.web.urls")),
    path("login/", LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("customers/", include("tagbase.customers.urls")),
    path("audiences/", include("tagbase.audiences.urls")),
    path("segments/", include("tagbase.segments.urls")),
    path("imports/", include("tagbase.imports.urls")),
    path("campaigns/", include("tagbase.campaigns.urls")),
    path("sets/", include("tagbase.sets.urls")),
    path("", include("tagbase.accounts.audit.urls")),
    path("api/v1/", api.urls),
    path("admin/", admin.site.urls),
]
