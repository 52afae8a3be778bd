"""The REST API at /api/v1: one NinjaAPI; each app contributes a Router (see docs/api.md)."""

from ninja import NinjaAPI

api = NinjaAPI(
    title="Tagbase API",
    version="1",
    description="Customers, target audiences and memberships for partner systems.",
    urls_namespace="api",
)
