from django.apps import AppConfig


class ImportsConfig(AppConfig):
    name = "tagbase.imports"
    label = "imports"
    verbose_name = "Audience imports"

    def ready(self) -> None:
        # Erasing a customer's personal data (docs/privacy.md) reaches into stored uploads,
        # staged rows and rejected-rows reports; customers sits below imports, so imports
        # registers its eraser there.
        from tagbase.customers.erasure import Eraser, register_eraser
        from tagbase.imports.services import erase_customer, find_customer_records

        register_eraser(Eraser("imports", erase_customer, prepare=find_customer_records))
