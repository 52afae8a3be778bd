from django.urls import path

from tagbase.imports import views

app_name = "imports"
urlpatterns = [
    path("", views.import_list, name="import_list"),
    path("new/", views.import_new, name="import_new"),
    path("<int:pk>/", views.import_detail, name="import_detail"),
    path("<int:pk>/commit/", views.import_commit, name="import_commit"),
    path("<int:pk>/cancel/", views.import_cancel, name="import_cancel"),
    path("<int:pk>/undo/", views.import_undo, name="import_undo"),
    path("<int:pk>/rejects.csv", views.import_rejects, name="import_rejects"),
]
