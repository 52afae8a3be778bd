from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "tagbase.customers"
    label = "customers"
    verbose_name = "Customers"
