from django.apps import AppConfig


class AudiencesConfig(AppConfig):
    name = "tagbase.audiences"
    label = "audiences"
    verbose_name = "Target audiences"

    def ready(self) -> None:
        # The customer profile shows a "Tags (target audience)" section; customers sits below
        # audiences in the layering, so audiences registers its section instead of being imported.
        from tagbase.audiences import profile  # noqa: F401

        # Erasing a customer's personal data (docs/privacy.md) removes them from every audience.
        from tagbase.audiences.services import erase_customer
        from tagbase.customers.erasure import Eraser, register_eraser

        register_eraser(Eraser("audiences", erase_customer))
