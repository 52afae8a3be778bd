from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "tagbase.accounts"
    label = "accounts"
    verbose_name = "Accounts"
