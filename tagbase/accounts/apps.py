from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "tagbase.accounts"
    label = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        from tagbase.accounts import audit

        audit.connect_signals()
