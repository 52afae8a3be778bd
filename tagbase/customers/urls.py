from django.urls import path

from tagbase.customers import views

app_name = "customers"
urlpatterns = [
    path("", views.customer_list, name="customer_list"),
    path("<int:sc_id>/", views.customer_detail, name="customer_detail"),
    path("<int:sc_id>/erase/", views.customer_erase, name="customer_erase"),
]
