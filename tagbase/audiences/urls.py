from django.urls import path

from tagbase.audiences import views

app_name = "audiences"
urlpatterns = [
    path("", views.audience_list, name="audience_list"),
    path("new/", views.audience_create, name="audience_create"),
    path("import/", views.audience_import, name="audience_import"),
    path("<int:pk>/", views.audience_detail, name="audience_detail"),
    path("<int:pk>/rename/", views.audience_rename, name="audience_rename"),
    path("<int:pk>/delete/", views.audience_delete, name="audience_delete"),
    path("<int:pk>/members/", views.audience_members_change, name="audience_members_change"),
    path("<int:pk>/expiry/", views.audience_expiry, name="audience_expiry"),
    path("<int:pk>/export/", views.audience_export, name="audience_export"),
    path("operations/<int:pk>/undo/", views.operation_undo, name="operation_undo"),
]
