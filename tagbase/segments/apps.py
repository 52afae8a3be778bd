from django.apps import AppConfig


class SegmentsConfig(AppConfig):
    name = "tagbase.segments"
    label = "segments"
    verbose_name = "User segments"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from tagbase.segments import catalogue

        catalogue.register_sqlite_functions()
