from django.urls import path

from tagbase.segments import views

app_name = "segments"
urlpatterns = [
    path("", views.segment_list, name="segment_list"),
    path("new/", views.segment_create, name="segment_create"),
    path("count/", views.segment_count, name="segment_count"),
    path("jobs/<int:pk>/", views.segment_job, name="segment_job"),
    path("<int:pk>/", views.segment_detail, name="segment_detail"),
    path("<int:pk>/edit/", views.segment_edit, name="segment_edit"),
    path("<int:pk>/rename/", views.segment_rename, name="segment_rename"),
    path("<int:pk>/duplicate/", views.segment_duplicate, name="segment_duplicate"),
    path("<int:pk>/delete/", views.segment_delete, name="segment_delete"),
    path("<int:pk>/refresh/", views.segment_refresh, name="segment_refresh"),
    path("<int:pk>/export/", views.segment_export, name="segment_export"),
    path("<int:pk>/audience/", views.segment_include, name="segment_include"),
]
