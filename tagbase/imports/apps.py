from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "tagbase.imports"
    label = "imports"
    verbose_name = "Audience imports"
