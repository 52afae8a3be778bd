from django.apps import AppConfig


class AudiencesConfig(AppConfig):
    name = "tagbase.audiences"
    label = "audiences"
    verbose_name = "Target audiences"

    def ready(self) -> None:
        # The customer profile shows a "Tags (target audience)" section; customers sits below
        # audiences in the layering, so audiences registers its section instead of being imported.
        from tagbase.audiences import profile  # noqa: F401
