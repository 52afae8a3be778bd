"""Who did something: a person, a partner system's token, or the system itself."""

from __future__ import annotations

from dataclasses import dataclass

from tagbase.accounts.models import ApiToken, User


@dataclass(frozen=True)
class Actor:
    """Passed to every write service as the keyword-only ``actor``; recorded on operations."""

    user: User | None
    label: str
    token: ApiToken | None = None

    @classmethod
    def of_user(cls, user: User) -> Actor:
        return cls(user=user, label=user.get_username())

    @classmethod
    def of_token(cls, token: ApiToken) -> Actor:
        return cls(user=token.created_by, label=f"token:{token.name}", token=token)

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(user=None, label=label)
