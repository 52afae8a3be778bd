from django.urls import path

from tagbase.sets import views

app_name = "sets"
urlpatterns = [
    path("combine/", views.combine, name="combine"),
    path("jobs/<int:pk>/", views.set_job, name="set_job"),
    path("as-of/<int:pk>/", views.as_of, name="as_of"),
    path("as-of/<int:pk>/export/", views.as_of_export, name="as_of_export"),
]
