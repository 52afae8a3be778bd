"""Builders and personas for tests (plain functions, no fixture magic).

Personas (what each may reach, see docs/glossary.md):
- ``admin``: everything, users and tokens;
- ``marketer``: audiences, imports, segments, campaigns;
- ``analyst``: reads everything, changes nothing, exports no personal data;
- ``outsider``: not logged in / no token — only the login page.
"""

from __future__ import annotations

import itertools
from typing import Any

from django.db import connection

from tagbase.accounts.actors import Actor
from tagbase.accounts.models import ApiToken, Role, User, hash_token
from tagbase.customers.models import Customer

_seq = itertools.count(1)
PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - test personas only


def make_user(role: str = Role.MARKETER, **overrides: Any) -> User:
    n = next(_seq)
    fields: dict[str, Any] = {"username": f"{role}{n}", "role": role}
    fields.update(overrides)
    user = User(**fields)
    user.set_password(PASSWORD)
    user.save()
    return user


def make_token(*scopes: str, name: str = "erp", user: User | None = None) -> tuple[ApiToken, str]:
    """A token with these scopes and its secret (returned once, as in real life)."""
    secret = ApiToken.generate_secret()
    token = ApiToken.objects.create(
        name=name,
        key_prefix=secret[:10],
        key_hash=hash_token(secret),
        scopes=list(scopes or ("read", "write")),
        created_by=user,
    )
    return token, secret


def make_customer(**overrides: Any) -> Customer:
    n = next(_seq)
    fields: dict[str, Any] = {"first_name": f"Test{n}", "last_name": "Customer"}
    fields.update(overrides)
    return Customer.objects.create(**fields)


def make_customers(count: int, **overrides: Any) -> list[int]:
    """Many customers at once; returns their ids in creation order."""
    made = Customer.objects.bulk_create([Customer(**overrides) for _ in range(count)])
    if made and made[0].pk is not None:
        return [c.pk for c in made]
    return list(Customer.objects.order_by("-sc_id").values_list("sc_id", flat=True)[:count])[::-1]


def system_actor() -> Actor:
    return Actor.system("test")


def membership_count_drift() -> list[tuple[int, int, int]]:
    """(audience id, stored count, actual count) for every audience whose count is wrong."""
    with connection.cursor() as cur:
        cur.execute(
            "SELECT a.id, a.member_count, COALESCE(m.n, 0) FROM audiences_audience a "
            "LEFT JOIN (SELECT audience_id, COUNT(*) AS n FROM audiences_membership "
            "GROUP BY audience_id) m ON m.audience_id = a.id "
            "WHERE a.member_count <> COALESCE(m.n, 0)"
        )
        return [tuple(r) for r in cur.fetchall()]  # type: ignore[misc]
