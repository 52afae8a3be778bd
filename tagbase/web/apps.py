from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "tagbase.web"
    label = "web"
    verbose_name = "Web UI"
