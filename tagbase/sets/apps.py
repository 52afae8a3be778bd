from django.apps import AppConfig


class SetsConfig(AppConfig):
    name = "tagbase.sets"
    label = "sets"
    verbose_name = "Set operations"
    default_auto_field = "django.db.models.BigAutoField"
