"""Erasing a customer's personal data: what each app must know, and how apps plug in.

``customers.services.erase_customer`` is the use case (docs/privacy.md). Customers sits below
the apps that also hold data about a customer (audiences, imports, campaigns), so it cannot
import them; as with the profile's sections (``customers.profile``) and the customer signals,
each of those apps registers an ``Eraser`` here from its ``AppConfig.ready`` instead, and owns
how its own data is erased:

- ``erase(customer, prepared, *, actor)`` runs inside the erasure's one transaction, after the
  customer's row is locked and before it is deleted, and returns what it did as counts (numbers
  only: the erasure record keeps them, and it holds no personal data);
- ``prepare(customer)``, optional, runs before that transaction and must only read: work too
  slow to do while holding the database's write lock (scanning stored files). What it returns is
  handed to ``erase`` as ``prepared``.

An eraser that finds the erasure cannot be done safely now raises ``ErasureBlocked``: the whole
erasure is rolled back and the caller is told why (and may simply try again later).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tagbase.customers.models import Card, Customer
from tagbase.lib.errors import ServiceError
from tagbase.lib.identifiers import IdType


class ErasureError(ServiceError):
    """An erasure was refused; ``code`` is stable (the API's error code)."""

    code = "erasure_error"


class ErasureBlocked(ErasureError):
    """Something in progress holds the customer's data and cannot be changed under it (an
    import a worker is reading right now). Nothing was erased; try again later."""

    code = "erasure_blocked"


@dataclass(frozen=True)
class ErasedCustomer:
    """What Tagbase knows about the customer being erased, read once from the customer's row
    and cards, so that every eraser can find the data that names them (an import file's line
    holds a phone, not an sc_id). Lives in memory for the erasure only; never stored."""

    sc_id: int
    external_id: str | None
    phone: str | None  # E.164, when the customer's phone is valid
    phone_raw: str
    email: str | None  # normalised, when valid
    email_raw: str
    cards: tuple[str, ...]
    names: tuple[str, ...]  # last, first and middle name, those that are set

    @classmethod
    def of(cls, customer: Customer) -> ErasedCustomer:
        cards = Card.objects.filter(customer_id=customer.sc_id).order_by("number")
        return cls(
            sc_id=customer.sc_id,
            external_id=customer.external_id or None,
            phone=customer.phone or None,
            phone_raw=customer.phone_raw,
            email=customer.email or None,
            email_raw=customer.email_raw,
            cards=tuple(cards.values_list("number", flat=True)),
            names=tuple(
                n for n in (customer.last_name, customer.first_name, customer.middle_name) if n
            ),
        )

    def identifiers(self, id_type: IdType | str) -> frozenset[str]:
        """The normalised values of one identifier type that name this customer, as an
        import file's rows normalise to (``tagbase.lib.identifiers``)."""
        values: dict[str, tuple[str | None, ...]] = {
            IdType.SC_ID: (str(self.sc_id),),
            IdType.EXTERNAL_ID: (self.external_id,),
            IdType.PHONE: (self.phone,),
            IdType.EMAIL: (self.email,),
            IdType.CARD: self.cards,
        }
        return frozenset(v for v in values[IdType(id_type)] if v)


Erase = Callable[..., dict[str, int]]  # (customer, prepared, *, actor) -> counts
Prepare = Callable[[ErasedCustomer], Any]


@dataclass(frozen=True)
class Eraser:
    """How one app erases what it holds about a customer (see the module docstring)."""

    app: str
    erase: Erase
    prepare: Prepare | None = None


_erasers: dict[str, Eraser] = {}


def register_eraser(eraser: Eraser) -> Eraser:
    """Register (or replace) the eraser of ``eraser.app``. Called from ``AppConfig.ready``."""
    _erasers[eraser.app] = eraser
    return eraser


def erasers() -> list[Eraser]:
    """Every registered eraser, in registration order (the order of INSTALLED_APPS)."""
    return list(_erasers.values())
