from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "tagbase.campaigns"
    label = "campaigns"
    verbose_name = "Campaigns"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Customers (a lower layer) announce registrations, receipts and events with signals;
        # campaigns listen here so that customers never imports campaigns.
        from tagbase.campaigns import profile, receivers  # noqa: F401  (profile registers)

        receivers.connect()

        # Erasing a customer's personal data (docs/privacy.md) reaches their entries, tokens,
        # passages and outbox messages.
        from tagbase.campaigns.services import erase_customer
        from tagbase.customers.erasure import Eraser, register_eraser

        register_eraser(Eraser("campaigns", erase_customer))
