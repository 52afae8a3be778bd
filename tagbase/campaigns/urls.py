from django.urls import path

from tagbase.campaigns import views

app_name = "campaigns"
urlpatterns = [
    path("", views.campaign_list, name="campaign_list"),
    path("new/", views.campaign_create, name="campaign_create"),
    path("<int:pk>/", views.campaign_detail, name="campaign_detail"),
    path("<int:pk>/edit/", views.campaign_edit, name="campaign_edit"),
    path("<int:pk>/activate/", views.campaign_activate, name="campaign_activate"),
    path("<int:pk>/suspend/", views.campaign_suspend, name="campaign_suspend"),
    path("<int:pk>/deactivate/", views.campaign_deactivate, name="campaign_deactivate"),
    path("<int:pk>/delete/", views.campaign_delete, name="campaign_delete"),
]
