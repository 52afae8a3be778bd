from typing import Any

from django.apps import AppConfig
from django.core.management import call_command
from django.db.models.signals import post_migrate


class WebConfig(AppConfig):
    name = "tagbase.web"
    label = "web"
    verbose_name = "Web UI"

    def ready(self) -> None:
        # Registers Tagbase's `check --deploy` checks (secret key, shared rate-limit cache).
        from tagbase.web import security  # noqa: F401

        # Sent once per app with models (this one has none); the command is idempotent.
        post_migrate.connect(_create_cache_table, dispatch_uid="tagbase.web.cache_table")


def _create_cache_table(using: str, **kwargs: Any) -> None:
    """With TAGBASE_CACHE=database, `tagbase migrate` (and so `tagbase serve`) also makes the
    rate limits' cache table; createcachetable skips a table that exists (one look at the
    schema) and does nothing for other caches."""
    call_command("createcachetable", database=using, verbosity=0)
